package sinktest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// CutProxy forwards TCP to ClickHouse until cut: then it closes every
// connection and refuses new ones, as a server gone away would, until
// restored. Tests share one ClickHouse, so stopping it is not an option.
type CutProxy struct {
	ln     net.Listener
	target string
	cutNow atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

// NewCutProxy starts a proxy to target; it is closed when the test ends.
func NewCutProxy(t testing.TB, target string) *CutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CutProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	return p
}

// Addr is the address to dial instead of ClickHouse's.
func (p *CutProxy) Addr() string { return p.ln.Addr().String() }

func (p *CutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.cutNow.Load() {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go pipe(s, c)
		go pipe(c, s)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// Cut closes every connection and refuses new ones until Restore.
func (p *CutProxy) Cut() {
	p.cutNow.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Restore lets connections through again.
func (p *CutProxy) Restore() { p.cutNow.Store(false) }
