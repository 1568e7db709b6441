// relay PORT NEXT: relay.ts in C (epoll) - each accepted conn piped both ways to a new conn to NEXT, or echoed (NEXT 0)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
static int peer[65536];
int main(int argc,char**argv){int port=atoi(argv[1]),next=atoi(argv[2]);int one=1;
 int ls=socket(AF_INET,SOCK_STREAM,0);setsockopt(ls,SOL_SOCKET,SO_REUSEADDR,&one,sizeof one);
 struct sockaddr_in a={.sin_family=AF_INET,.sin_port=htons(port)};a.sin_addr.s_addr=htonl(0x7f000001);
 if(bind(ls,(void*)&a,sizeof a)||listen(ls,64)){perror("listen");return 1;}
 int ep=epoll_create1(0);struct epoll_event e={.events=EPOLLIN,.data.fd=ls};epoll_ctl(ep,EPOLL_CTL_ADD,ls,&e);
 static char buf[65536];struct epoll_event ev[64];
 for(;;){int n=epoll_wait(ep,ev,64,-1);for(int j=0;j<n;j++){int fd=ev[j].data.fd;
  if(fd==ls){int c=accept(ls,0,0);setsockopt(c,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);int o=c;
    if(next){o=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in b=a;b.sin_port=htons(next);if(connect(o,(void*)&b,sizeof b)){perror("connect");return 1;}
      setsockopt(o,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);peer[o]=c;struct epoll_event f={.events=EPOLLIN,.data.fd=o};epoll_ctl(ep,EPOLL_CTL_ADD,o,&f);}
    peer[c]=o;struct epoll_event f={.events=EPOLLIN,.data.fd=c};epoll_ctl(ep,EPOLL_CTL_ADD,c,&f);continue;}
  int r=read(fd,buf,sizeof buf);if(r<=0){close(fd);continue;}
  for(int off=0;off<r;){int w=write(peer[fd],buf+off,r-off);if(w<=0)break;off+=w;}}}}
