import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { CidrSet, formatHostPort, parseIp, peerKey } from "../net/address.ts";

Deno.test("parseIp() reads IPv4 and every IPv6 spelling, and refuses names and junk", () => {
  deepStrictEqual([...parseIp("192.168.1.20")!], [192, 168, 1, 20]);
  deepStrictEqual(parseIp("::1")!.at(-1), 1);
  deepStrictEqual(parseIp("2001:db8::8:800:200c:417a")!.length, 16);
  deepStrictEqual(parseIp("fe80::1%eth0")!.length, 16);
  deepStrictEqual([...parseIp("::ffff:10.1.2.3")!], [10, 1, 2, 3]); // mapped IPv4 is IPv4
  for (const bad of ["example.com", "256.1.1.1", "1.2.3", "1::2::3", "12345::", "", "1.2.3.4/8"]) {
    deepStrictEqual(parseIp(bad), undefined, bad);
  }
});

Deno.test("CidrSet matches prefixes bit by bit, IPv4 and IPv6 apart", () => {
  const set = CidrSet.parse("10.0.0.0/8, 192.168.4.0/22,2001:db8::/32,::1");
  ok(set.has("10.255.0.1") && set.has("192.168.7.255") && set.has("2001:db8:ffff::1"));
  ok(set.has("::1") && set.has("::ffff:10.9.9.9"));
  ok(!set.has("11.0.0.1") && !set.has("192.168.8.0") && !set.has("2001:db9::1"));
  ok(!set.has("::2") && !set.has("not-an-address"));
  ok(CidrSet.parse("0.0.0.0/0").has("8.8.8.8") && !CidrSet.parse("0.0.0.0/0").has("::1"));
  ok(!CidrSet.parse("").has("127.0.0.1") && !CidrSet.parse([]).has("::1"));
  for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/x", "example.com", "10.0.0.0/"]) {
    throws(() => CidrSet.parse(bad), TypeError, bad);
  }
});

Deno.test("peerKey() counts one peer under one key whatever its spelling", () => {
  deepStrictEqual(peerKey("::ffff:127.0.0.1"), "127.0.0.1");
  deepStrictEqual(peerKey("10.0.0.1"), "10.0.0.1");
  deepStrictEqual(peerKey("2001:DB8::1"), "2001:db8::1");
  deepStrictEqual(formatHostPort("2001:db8::1", 80), "[2001:db8::1]:80");
});
