package main

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
)

// 200 connections trickling an unsigned body cannot hold the webhook
// port: the server cuts every one of them once the read timeout passes,
// whether its request is being read or was refused for want of a slot.
func TestSlowUnsignedBodiesAreCut(t *testing.T) {
	cfg := config.Default().Webhook
	cfg.Listen, cfg.Secret, cfg.ReadTimeout = "127.0.0.1:0", "s", time.Second
	// No store: an unsigned body never reaches it.
	w, err := newWebhookEndpoint(cfg, t.TempDir(), nil, &sink.Store{}, prometheus.NewRegistry(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- w.serve(ctx) }()
	defer func() {
		cancel()
		<-served
	}()
	addr := w.ln.Addr().String()
	const conns = 200
	var wg sync.WaitGroup
	cut := make(chan bool, conns)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nX-Cekat-Signature: 00\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { // trickles until the server stops reading
			defer wg.Done()
			for {
				time.Sleep(100 * time.Millisecond)
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			// Not a speed check: a bound far above the read timeout, so a
			// connection never cut fails the test instead of hanging it.
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			timedOut := err != nil && errors.As(err, &ne) && ne.Timeout()
			cut <- !timedOut
			c.Close()
		}()
	}
	wg.Wait()
	close(cut)
	held := 0
	for ok := range cut {
		if !ok {
			held++
		}
	}
	if held > 0 {
		t.Errorf("%d of %d slow unsigned connections still open after 2 minutes", held, conns)
	}
}
