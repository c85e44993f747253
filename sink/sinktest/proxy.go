package sinktest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP to ClickHouse and plays the ways a server goes away:
// cut (every connection closed, new ones refused, as a server gone away),
// or stalled (every byte held back, connections open, as a server that
// stopped answering). Tests share one ClickHouse, so stopping it is not an
// option.
type Proxy struct {
	ln      net.Listener
	target  string
	cutNow  atomic.Bool
	gate    sync.RWMutex // held for writing while stalled
	stalled atomic.Bool
	waiting atomic.Int32 // chunks held at the gate
	mu      sync.Mutex
	conns   []net.Conn
}

// NewProxy starts a proxy to target; it is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Addr is the address to dial instead of ClickHouse's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		// Checked under the lock Cut takes: a connection accepted while
		// Cut runs is refused, never left out of what Cut closes.
		p.mu.Lock()
		if p.cutNow.Load() {
			p.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c)
		go p.pipe(c, s)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.waiting.Add(1)
			p.gate.RLock()
			p.waiting.Add(-1)
			_, werr := dst.Write(buf[:n])
			p.gate.RUnlock()
			if werr != nil {
				err = werr
			}
		}
		if err != nil {
			// Either side ending ends both: a client left connected to
			// a server that is gone would wait for its answer for ever.
			dst.Close()
			src.Close()
			return
		}
	}
}

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cutNow.Store(true)
	p.mu.Unlock()
	p.closeConns()
}

// Restore lets connections through again.
func (p *Proxy) Restore() { p.cutNow.Store(false) }

// Stall holds every byte back until Close.
func (p *Proxy) Stall() {
	p.gate.Lock()
	p.stalled.Store(true)
}

// Held says how many chunks of data wait at the stalled gate.
func (p *Proxy) Held() int { return int(p.waiting.Load()) }

// Close stops the proxy and closes its connections; safe to repeat.
func (p *Proxy) Close() {
	p.ln.Close()
	if p.stalled.Swap(false) {
		p.gate.Unlock()
	}
	p.closeConns()
}

func (p *Proxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
