package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{
		"-shape", "real", "-counts", "200000, 10,0", "-auth", "both", "-rate-per-minute", "10", "-retry-after",
		"-latency", "20ms", "-fault-5xx", "0.1", "-fault-drop", "0.05", "-fault-truncate", "0.02", "-malformed-rate", "0.01",
		"-live-rate", "0.3", "-start", "2025-01-02T03:04:05Z", "-no-pagination", "-max-delete-batch", "7",
		"-backoffice-auth", "bearer", "-api-key", "k", "-backoffice-token", "b", "-rate-per-day", "1000", "-seed", "9",
		"-rate-headers", "limit_remaining", "-rate-window-aligned",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if o.Shape != cekatsim.ShapeReal || len(o.MessageCounts) != 3 || o.MessageCounts[0] != 200000 || o.Auth != cekatsim.AuthBoth ||
		o.RatePerMinute != 10 || !o.RetryAfter || o.Latency != 20*time.Millisecond || o.Fault5xx != 0.1 || o.FaultDrop != 0.05 ||
		o.FaultTruncate != 0.02 || o.MalformedRate != 0.01 || o.LiveRate != 0.3 || !o.NoPagination || o.MaxDeleteBatch != 7 ||
		o.BackofficeAuth != "bearer" || o.APIKey != "k" || o.BackofficeToken != "b" || o.RatePerDay != 1000 || o.Seed != 9 ||
		o.RateHeaders != cekatsim.RateHeadersLimitRemaining || !o.RateWindowAligned ||
		!o.Start.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("options %+v", o)
	}
	for _, bad := range [][]string{{"-counts", "1,x"}, {"-start", "yesterday"}, {"-nope"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if code := runWith(context.Background(), []string{"-shape", "nested"}, io.Discard); code != 2 {
		t.Errorf("invalid shape: exit %d", code)
	}
	if code := runWith(context.Background(), []string{"-rate-headers", "reset"}, io.Discard); code != 2 {
		t.Errorf("invalid rate headers: exit %d", code)
	}
	if c, err := parseFlags(nil, io.Discard); err != nil || c.opts.RateHeaders != cekatsim.RateHeadersAll || c.opts.RateWindowAligned {
		t.Errorf("default rate headers %q, aligned %v, %v", c.opts.RateHeaders, c.opts.RateWindowAligned, err)
	}
}

func TestParseOddityFlags(t *testing.T) {
	c, err := parseFlags([]string{"-odd-ids", "-cursor-cycle-conversations", "3", "-foreign-item-rate", "0.25"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.opts; !o.OddIDs || o.CursorCycleConversations != 3 || o.ForeignItemRate != 0.25 {
		t.Fatalf("options %+v", o)
	}
	if c, err := parseFlags(nil, io.Discard); err != nil || c.opts.OddIDs || c.opts.CursorCycleConversations != 0 || c.opts.ForeignItemRate != 0 {
		t.Fatalf("defaults %+v, %v", c.opts, err)
	}
	for _, bad := range [][]string{{"-cursor-cycle-conversations", "-1"}, {"-foreign-item-rate", "2"}} {
		if code := runWith(context.Background(), bad, io.Discard); code != 2 {
			t.Errorf("%v: exit %d", bad, code)
		}
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	ids := filepath.Join(t.TempDir(), "ids.txt")
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- runWith(ctx, []string{"-listen", "127.0.0.1:0", "-backoffice-listen", "127.0.0.1:0", "-counts", "3,0,5", "-ids-file", ids, "-shape", "real"}, &stderr)
	}()
	re := regexp.MustCompile(`(messages|back-office) API listening on (http://\S+)`)
	var addrs map[string]string
	for deadline := time.Now().Add(5 * time.Second); ; {
		addrs = map[string]string{}
		for _, m := range re.FindAllStringSubmatch(stderr.String(), -1) {
			addrs[m[1]] = m[2]
		}
		if len(addrs) == 2 && strings.Contains(stderr.String(), "3 conversations") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listen lines: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := os.ReadFile(ids)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("ids file %q", b)
	}
	req, _ := http.NewRequest("GET", addrs["messages"]+"/messages?conversation_id="+lines[2], nil)
	req.Header.Set("api_key", cekatsim.DefaultAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), `"sent_by_type"`) != 5 {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	req, _ = http.NewRequest("POST", addrs["back-office"]+"/v1/backoffice/conversations-delete", strings.NewReader(`{"conversation_ids":["`+lines[0]+`"]}`))
	req.Header.Set("access_token", cekatsim.DefaultBackofficeToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
}

func TestSingleListener(t *testing.T) {
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- runWith(ctx, []string{"-listen", "127.0.0.1:0", "-backoffice-listen", "", "-conversations", "2"}, &stderr)
	}()
	re := regexp.MustCompile(`messages API listening on (http://\S+)`)
	var base string
	for deadline := time.Now().Add(5 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no listen line: %s", stderr.String())
		}
	}
	req, _ := http.NewRequest("POST", base+"/v1/backoffice/conversations-delete", strings.NewReader(`{"conversation_ids":["x"]}`))
	req.Header.Set("Authorization", "Bearer "+cekatsim.DefaultBackofficeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("delete on the API listener: %d", resp.StatusCode)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
}
