package cekatsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"
)

// unreadStatus is the status of an inbound message nobody has read yet.
func unreadStatus(shape Shape) string {
	if shape == ShapeReal {
		return "delivered"
	}
	return "received"
}

// liveServer is a simulator whose conversations also hold n messages that
// came in at the start of the clock, so their statuses can be watched from
// the beginning.
func liveServer(t *testing.T, shape Shape, seed int64, n int) *Server {
	t.Helper()
	s, err := New(Options{Seed: seed, Conversations: 8, MeanMessages: 20, Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	ids := s.ConversationIDs()
	for _, id := range ids {
		s.AddMessages(id, n/len(ids))
	}
	return s
}

// firstStatus is the status a message has when it is created.
func firstStatus(shape Shape, m TruthMessage) string {
	if m.Direction == "inbound" {
		return unreadStatus(shape)
	}
	return "sent"
}

// checkStatusTimes checks one truth message's status against its status
// times at the simulated time now.
func checkStatusTimes(t *testing.T, shape Shape, m TruthMessage, now time.Time) {
	t.Helper()
	fail := func(what string) {
		t.Helper()
		t.Fatalf("%s: %s: %s message %s, status %s, time stamp %v, delivered %v, read %v, failed %v, status at %v (now %v)",
			what, shape, m.Direction, m.ID, m.Status, m.Timestamp, m.DeliveredAt, m.ReadAt, m.FailedAt, m.StatusAt, now)
	}
	if m.StatusAt.After(now) || m.StatusAt.Before(m.Timestamp) {
		fail("status reached outside [time stamp, now]")
	}
	if (m.Status == "failed") != (m.FailedAt != nil) {
		fail("failed_at set iff failed")
	}
	if (m.Status == "read") != (m.ReadAt != nil) {
		fail("read_at set iff read")
	}
	if m.Status == firstStatus(shape, m) {
		if !m.StatusAt.Equal(m.Timestamp) {
			fail("first status not reached at the time stamp")
		}
		if m.ReadAt != nil || m.FailedAt != nil || (m.Direction == "outbound" && m.DeliveredAt != nil) {
			fail("first status with later status times")
		}
		return
	}
	var at *time.Time
	switch m.Status {
	case "delivered":
		at = m.DeliveredAt
	case "read":
		at = m.ReadAt
	case "failed":
		at = m.FailedAt
	}
	if at == nil || !at.Equal(m.StatusAt) || !at.After(m.Timestamp) {
		fail("status_at is not the time of the status")
	}
	if m.Direction == "inbound" {
		if m.Status != "read" || m.DeliveredAt != nil {
			fail("inbound status")
		}
		if d := m.ReadAt.Sub(m.Timestamp); d <= 9*time.Second || d >= 2*24*time.Hour+time.Second {
			fail(fmt.Sprintf("read %v after it came in", d))
		}
	} else if m.Status == "read" && !m.ReadAt.After(*m.DeliveredAt) {
		fail("read before delivered")
	}
}

// Inbound messages arrive unread and are read 10 s to 2 days later, or never;
// every status change, in both directions, happens at the truth's StatusAt.
func TestInboundStatusesMove(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			s := liveServer(t, shape, 31, 1600)
			start := s.Now()
			// steps from 1 s to a day: the clock passes the whole range of
			// read delays, finely at first
			var steps []time.Duration
			for d := time.Second; d < 24*time.Hour; d = d * 3 / 2 {
				steps = append(steps, d)
			}
			steps = append(steps, 24*time.Hour, 24*time.Hour, time.Hour)

			prev := map[string]TruthMessage{}
			live := map[string]bool{} // messages that came in at start
			changes := map[string]int{}
			for i, m := range s.Truth() {
				checkStatusTimes(t, shape, m, start)
				if m.Timestamp.Equal(start) {
					live[m.ID] = true
					if m.Status != firstStatus(shape, m) {
						t.Fatalf("message %d just came in with status %s", i, m.Status)
					}
				}
				prev[m.ID] = m
			}
			if len(live) != 1600 {
				t.Fatalf("%d live messages", len(live))
			}
			before := start
			for _, d := range steps {
				s.Advance(d)
				now := s.Now()
				for _, m := range s.Truth() {
					checkStatusTimes(t, shape, m, now)
					p := prev[m.ID]
					if p.Status == m.Status {
						if !p.StatusAt.Equal(m.StatusAt) || !timesEqual(p.ReadAt, m.ReadAt) || !timesEqual(p.DeliveredAt, m.DeliveredAt) {
							t.Fatalf("status times of %s moved without a status change: %+v then %+v", m.ID, p, m)
						}
						continue
					}
					// the change happened within the step
					if !m.StatusAt.After(before) || m.StatusAt.After(now) {
						t.Fatalf("%s went %s -> %s at %v, outside the step (%v, %v]", m.ID, p.Status, m.Status, m.StatusAt, before, now)
					}
					if statusRank(m.Status) < statusRank(p.Status) || p.Status == "failed" || p.Status == "read" {
						t.Fatalf("%s went back from %s to %s", m.ID, p.Status, m.Status)
					}
					if m.Direction == "inbound" {
						changes["in "+p.Status+">"+m.Status]++
					} else {
						changes["out "+p.Status+">"+m.Status]++
					}
					prev[m.ID] = m
				}
				before = now
			}

			// after two days, the live inbound messages are read or never will be
			var inbound, unread, quick, slow int
			for id := range live {
				m := prev[id]
				if m.Direction != "inbound" {
					continue
				}
				inbound++
				if m.Status != "read" {
					unread++
					continue
				}
				switch d := m.ReadAt.Sub(m.Timestamp); {
				case d < 10*time.Minute:
					quick++
				case d > 12*time.Hour:
					slow++
				}
			}
			read := inbound - unread
			t.Logf("%d inbound: %d never read, %d read within 10 minutes, %d after 12 hours; changes %v", inbound, unread, quick, slow, changes)
			if inbound < 600 || inbound > 1000 {
				t.Fatalf("%d of 1600 messages inbound", inbound)
			}
			if f := float64(unread) / float64(inbound); f < 0.06 || f > 0.15 {
				t.Errorf("%.3f of inbound messages never read, want about 0.10", f)
			}
			// log-uniform over [10 s, 2 d]: 42% within 10 minutes, 14% after 12 hours
			if f := float64(quick) / float64(read); math.Abs(f-0.42) > 0.08 {
				t.Errorf("%.3f of reads within 10 minutes, want about 0.42", f)
			}
			if f := float64(slow) / float64(read); math.Abs(f-0.14) > 0.06 {
				t.Errorf("%.3f of reads after 12 hours, want about 0.14", f)
			}
			unreadKey := "in " + unreadStatus(shape) + ">read"
			for _, k := range []string{unreadKey, "out sent>delivered", "out delivered>read", "out sent>failed"} {
				if changes[k] == 0 {
					t.Errorf("no change %s while the clock moved two days", k)
				}
			}
			for k := range changes {
				if k[:3] == "in " && k != unreadKey {
					t.Errorf("inbound change %s", k)
				}
			}
		})
	}
}

// Statuses are a function of the seed and the clock: the same seed gives the
// same truth and answers however the clock got there; another seed differs.
func TestStatusesDeterministic(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			truth := func(seed int64, steps ...time.Duration) []byte {
				s := liveServer(t, shape, seed, 400)
				for _, d := range steps {
					s.Advance(d)
					_ = s.Truth() // looking does not change anything
				}
				var buf bytes.Buffer
				if err := s.WriteTruth(&buf); err != nil {
					t.Fatal(err)
				}
				return buf.Bytes()
			}
			a := truth(5, 90*time.Minute)
			b := truth(5, time.Minute, 29*time.Minute, time.Hour)
			if !bytes.Equal(a, b) {
				t.Fatal("same seed, same clock, different truth")
			}
			if bytes.Equal(a, truth(6, 90*time.Minute)) {
				t.Fatal("another seed gave the same truth")
			}
			if bytes.Equal(a, truth(5, 3*time.Hour)) {
				t.Fatal("no status moved between 90 minutes and 3 hours")
			}
			// the truth carries the new fields
			var m map[string]any
			if err := json.Unmarshal(a[:bytes.IndexByte(a, '\n')], &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"status_at", "failed_at", "read_at"} {
				if _, ok := m[k]; !ok {
					t.Errorf("truth line without %s: %v", k, m)
				}
			}
			// the same detail answer twice
			e := newEnv(t, Options{Seed: 5, Conversations: 4, MeanMessages: 30, Shape: shape})
			for _, m := range e.sim.Truth()[:20] {
				x, y := e.get("/messages/"+m.ID), e.get("/messages/"+m.ID)
				if x.status != 200 || !bytes.Equal(x.body, y.body) {
					t.Fatalf("detail of %s: %d %s then %s", m.ID, x.status, x.body, y.body)
				}
			}
		})
	}
}

// servedStatus is the status and times of one served item.
type servedStatus struct {
	status, readAt, deliveredAt, updatedAt string
	hasStatus, hasRecipient                bool
}

func served(t *testing.T, raw json.RawMessage) servedStatus {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	_, hasStatus := m["status"]
	_, hasRecipient := m["recipient"]
	return servedStatus{status: str("status"), readAt: str("read_at"), deliveredAt: str("delivered_at"),
		updatedAt: str("updated_at"), hasStatus: hasStatus, hasRecipient: hasRecipient}
}

func parsedEqual(t *testing.T, s string, want time.Time) bool {
	t.Helper()
	got, ok := parseServedTime(s)
	return ok && got.Equal(want)
}

// The detail answer serves an inbound message's status and read_at in both
// shapes; the flat list serves its status and an updated_at that follows.
func TestInboundStatusRendering(t *testing.T) {
	for _, shape := range shapes {
		t.Run(string(shape), func(t *testing.T) {
			e := newEnv(t, Options{Seed: 9, Conversations: 10, MeanMessages: 25, Shape: shape})
			for _, id := range e.sim.ConversationIDs() {
				e.sim.AddMessages(id, 30)
			}
			var unread, read, readFormats = 0, 0, map[int]bool{}
			for _, d := range []time.Duration{0, 10 * time.Minute, 3 * 24 * time.Hour} {
				e.sim.Advance(d)
				truth := truthByConv(e.sim)
				for _, conv := range e.sim.ConversationIDs() {
					items := walk(t, e, conv, 100)
					if len(items) != len(truth[conv]) {
						t.Fatalf("%d items, %d in the truth", len(items), len(truth[conv]))
					}
					for i, raw := range items {
						m := truth[conv][i]
						list := served(t, raw)
						a := e.get("/messages/" + m.ID)
						if a.status != 200 {
							t.Fatalf("detail %s: %d", m.ID, a.status)
						}
						var ans struct {
							Data json.RawMessage `json:"data"`
						}
						if err := json.Unmarshal(a.body, &ans); err != nil {
							t.Fatal(err)
						}
						det := served(t, ans.Data)
						if det.status != m.Status {
							t.Fatalf("detail status %q, truth %q: %s", det.status, m.Status, ans.Data)
						}
						if shape == ShapeReal {
							// the list serves the status, and updated_at is when it was reached
							if list.status != m.Status || !parsedEqual(t, list.updatedAt, m.StatusAt) || !parsedEqual(t, det.updatedAt, m.StatusAt) {
								t.Fatalf("real item of %s %s (status at %v): list %+v, detail %+v", m.Direction, m.Status, m.StatusAt, list, det)
							}
						} else if list.hasStatus || list.readAt != "" {
							t.Fatalf("documented list item with a status: %s", raw)
						}
						if list.readAt != "" || list.deliveredAt != "" {
							t.Fatalf("list item with status times: %s", raw)
						}
						if m.Direction != "inbound" {
							continue
						}
						if det.deliveredAt != "" || det.hasRecipient {
							t.Fatalf("inbound detail with delivered_at or recipient: %s", ans.Data)
						}
						switch m.Status {
						case unreadStatus(shape):
							unread++
							if det.readAt != "" {
								t.Fatalf("unread inbound message with read_at: %s", ans.Data)
							}
						case "read":
							read++
							if !parsedEqual(t, det.readAt, *m.ReadAt) {
								t.Fatalf("read_at %q, truth %v: %s", det.readAt, m.ReadAt, ans.Data)
							}
							readFormats[timeFormatOf(det.readAt)] = true
						default:
							t.Fatalf("inbound status %q in the %s shape", m.Status, shape)
						}
					}
				}
			}
			if unread == 0 || read == 0 {
				t.Errorf("%d unread and %d read inbound answers", unread, read)
			}
			if shape == ShapeReal && len(readFormats) < 4 {
				t.Errorf("inbound read_at served in formats %v", readFormats)
			}
		})
	}
}
