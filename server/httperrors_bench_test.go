package server

import (
	"io"
	"net"
	"testing"
)

// BenchmarkResponseWrite: what jsonErrorsConn adds to every response a
// handler writes (an ext_authz allow is one small Write), over a loopback
// TCP connection whose other end drains it.
func BenchmarkResponseWrite(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nX-Meshguard-Agent-Id: agent_ou6ymsvewq7qeevltttd\r\nX-Meshguard-Decision-Id: dec_01\r\nDate: Mon, 02 Mar 2026 10:00:00 GMT\r\nContent-Length: 0\r\n\r\n")
	for _, bc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{
		{"plain", func(c net.Conn) net.Conn { return c }},
		{"jsonErrors", func(c net.Conn) net.Conn { return &jsonErrorsConn{Conn: c} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer lis.Close()
			go func() {
				c, err := lis.Accept()
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
			raw, err := net.Dial("tcp", lis.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			c := bc.wrap(raw)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
