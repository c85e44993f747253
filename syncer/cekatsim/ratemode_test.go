package cekatsim

import (
	"strconv"
	"testing"
	"time"
)

// The rate headers sent follow Options.RateHeaders; a 429 carries
// Retry-After whatever they are.
func TestRateHeaders(t *testing.T) {
	for _, tc := range []struct {
		which                  RateHeaders
		limit, remain, resetOK bool
	}{
		{"", true, true, true},
		{RateHeadersAll, true, true, true},
		{RateHeadersLimitRemaining, true, true, false},
		{RateHeadersNone, false, false, false},
	} {
		name := string(tc.which)
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}, RatePerMinute: 2, RetryAfter: true,
				RateHeaders: tc.which, Now: clk.Now})
			conv := e.sim.ConversationIDs()[0]
			for i := range 3 {
				a := e.get(listPath(conv))
				want := 200
				if i == 2 {
					want = 429
					if got := a.header.Get("Retry-After"); got != "60" {
						t.Errorf("429 Retry-After %q, want 60", got)
					}
				}
				if a.status != want {
					t.Fatalf("request %d: %d, want %d", i, a.status, want)
				}
				has := func(k string) bool { return a.header.Get(k) != "" }
				if has("X-RateLimit-Limit") != tc.limit || has("X-RateLimit-Remaining") != tc.remain ||
					has("X-RateLimit-Reset") != tc.resetOK {
					t.Fatalf("request %d: headers %v", i, a.header)
				}
				if tc.remain && a.header.Get("X-RateLimit-Remaining") != strconv.Itoa(max(1-i, 0)) {
					t.Fatalf("request %d: remaining %q", i, a.header.Get("X-RateLimit-Remaining"))
				}
			}
		})
	}
}

// Aligned windows are the clock's minutes; unaligned ones start at the
// first request after the previous window ended.
func TestRateWindowAligned(t *testing.T) {
	for _, aligned := range []bool{false, true} {
		t.Run(strconv.FormatBool(aligned), func(t *testing.T) {
			clk := newFakeClock() // 10:00:00
			clk.Add(42*time.Second + 300*time.Millisecond)
			e := newEnv(t, Options{Seed: 1, MessageCounts: []int{3}, RatePerMinute: 2, RetryAfter: true,
				RateWindowAligned: aligned, Now: clk.Now})
			conv := e.sim.ConversationIDs()[0]
			wantEnd := time.Date(2025, 6, 1, 10, 1, 42, 0, time.UTC)
			if aligned {
				wantEnd = time.Date(2025, 6, 1, 10, 1, 0, 0, time.UTC)
			}
			for i := range 2 {
				if a := e.get(listPath(conv)); a.status != 200 || a.header.Get("X-RateLimit-Reset") != strconv.FormatInt(wantEnd.Unix(), 10) {
					t.Fatalf("request %d: %d %v", i, a.status, a.header)
				}
			}
			a := e.get(listPath(conv))
			if want := strconv.Itoa(int(wantEnd.Sub(clk.Now()).Seconds() + 1)); a.status != 429 || a.header.Get("Retry-After") != want {
				t.Fatalf("3rd request: %d, Retry-After %q, want %s", a.status, a.header.Get("Retry-After"), want)
			}
			clk.Add(wantEnd.Sub(clk.Now()))
			if a := e.get(listPath(conv)); a.status != 200 || a.header.Get("X-RateLimit-Remaining") != "1" {
				t.Fatalf("at the window's end: %d %v", a.status, a.header)
			}
		})
	}
}

func TestRateHeadersValidation(t *testing.T) {
	if _, err := New(Options{RateHeaders: "some"}); err == nil {
		t.Fatal("unknown RateHeaders accepted")
	}
}
