#!/bin/bash
# Records the committed replay capture: crafted and scanned drops, IPv4 and IPv6.
set -u
S=nfdL-srv C=nfdL-cli OUT=${1:-/tmp/nfd/capture.pcap}
cleanup() { kill $TD 2>/dev/null; wait 2>/dev/null; ip netns del $S 2>/dev/null; ip netns del $C 2>/dev/null; }
trap cleanup EXIT
ip netns add $S; ip netns add $C
ip link add vs netns $S address 02:00:00:00:00:01 type veth peer name vc netns $C address 02:00:00:00:00:02
ip -n $S addr add 10.99.0.1/24 dev vs; ip -n $C addr add 10.99.0.2/24 dev vc
ip -n $S addr add fd99::1/64 dev vs nodad; ip -n $C addr add fd99::2/64 dev vc nodad
ip -n $S link set vs up; ip -n $C link set vc up; ip -n $S link set lo up; ip -n $C link set lo up
for t in iptables ip6tables; do
ip netns exec $S $t -A INPUT -i lo -j ACCEPT
ip netns exec $S $t -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ip netns exec $S $t -A INPUT -p tcp -m conntrack --ctstate NEW -m multiport --dports 80,443 -j ACCEPT
done
ip netns exec $S ip6tables -A INPUT -p ipv6-icmp --icmpv6-type neighbour-solicitation -j ACCEPT
ip netns exec $S ip6tables -A INPUT -p ipv6-icmp --icmpv6-type neighbour-advertisement -j ACCEPT
for t in iptables ip6tables; do
ip netns exec $S $t -A INPUT -j NFLOG --nflog-group 0 --nflog-prefix "denied" --nflog-size 256
ip netns exec $S $t -A INPUT -j DROP
done
ip netns exec $S tcpdump -q -i nflog:0 -w $OUT 2>/dev/null &
TD=$!
sleep 1
X="timeout 10 ip netns exec $C"
$X hping3 -q -c 3 -i u2000 -S -p 22 10.99.0.1 2>/dev/null
$X hping3 -q -c 2 -i u2000 -F -A -p 443 10.99.0.1 2>/dev/null
$X hping3 -q -c 2 -i u2000 -R -p 443 10.99.0.1 2>/dev/null
$X hping3 -q -c 1 -i u2000 -F -P -U -p 443 10.99.0.1 2>/dev/null
$X hping3 -q -c 1 -i u2000 -Y -p 443 10.99.0.1 2>/dev/null
$X hping3 -q -c 2 -i u2000 -2 -s 40000 -k -p 53 10.99.0.1 2>/dev/null
$X hping3 -q -c 1 -i u2000 -1 10.99.0.1 2>/dev/null
$X nmap -6 -n -Pn -sS -p 22,8080 --max-retries 0 fd99::1 >/dev/null 2>&1
$X nmap -6 -n -Pn -sN -p 443 --max-retries 0 fd99::1 >/dev/null 2>&1
$X python3 -c 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("fd99::2",40001)); [s.sendto(b"x"*10, ("fd99::1", 123)) for _ in range(2)]'
sleep 2
ip netns exec $S iptables -nvxL INPUT | grep NFLOG
ip netns exec $S ip6tables -nvxL INPUT | grep NFLOG
