package main

import "testing"

func TestParseRcvbufErrors(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"Udp: 1000 2 37 900 35 0 0 0 0\n" +
		"UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"UdpLite: 0 0 0 0 7 0 0 0 0\n"
	if n := parseRcvbufErrors(snmp); n != 35 {
		t.Errorf("RcvbufErrors = %d, want 35", n)
	}
	if n := parseRcvbufErrors("Ip: Forwarding\nIp: 1\n"); n != -1 {
		t.Errorf("without Udp lines: %d, want -1", n)
	}
}

func TestParseQdiscDrops(t *testing.T) {
	out := "qdisc tbf 8001: root refcnt 2 rate 100Mbit burst 32Kb lat 20ms\n" +
		" Sent 63781922 bytes 44251 pkt (dropped 17, overlimits 3990 requeues 0)\n" +
		" backlog 0b 0p requeues 0\n"
	if n := parseQdiscDrops(out); n != 17 {
		t.Errorf("drops = %d, want 17", n)
	}
	if n := parseQdiscDrops("qdisc noqueue 0: root refcnt 2\n"); n != 0 {
		t.Errorf("no counters: %d, want 0", n)
	}
}
