// client PORT CONNS WINDOW SECONDS: CONNS connections, each keeps WINDOW 77-byte messages in flight; prints msgs/s
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#define MSG 77
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){int port=atoi(argv[1]),K=atoi(argv[2]),W=atoi(argv[3]);double secs=atof(argv[4]);
 int ep=epoll_create1(0);int fd[256];long got[256];char msg[MSG*64];memset(msg,'x',sizeof msg);
 for(int i=0;i<K;i++){fd[i]=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={.sin_family=AF_INET,.sin_port=htons(port+0)};a.sin_addr.s_addr=htonl(0x7f000001);
  if(connect(fd[i],(void*)&a,sizeof a)){perror("connect");return 1;}int one=1;setsockopt(fd[i],IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
  fcntl(fd[i],F_SETFL,O_NONBLOCK);struct epoll_event e={.events=EPOLLIN,.data.u32=i};epoll_ctl(ep,EPOLL_CTL_ADD,fd[i],&e);got[i]=0;}
 usleep(200000);
 for(int i=0;i<K;i++) for(int w=0;w<W;w++) write(fd[i],msg,MSG);
 long total=0;double t0=now(),end=t0+secs;char buf[65536];struct epoll_event ev[64];
 while(now()<end){int n=epoll_wait(ep,ev,64,100);for(int j=0;j<n;j++){int i=ev[j].data.u32;int r;
   int one=1;
   while((r=read(fd[i],buf,sizeof buf))>0){got[i]+=r;long done=got[i]/MSG;got[i]%=MSG;total+=done;
     setsockopt(fd[i],IPPROTO_TCP,TCP_QUICKACK,&one,sizeof one);
     while(done>0){long k=done>64?64:done;write(fd[i],msg,k*MSG);done-=k;}}}}
 printf("msgs/s=%.0f\n",total/(now()-t0));return 0;}
