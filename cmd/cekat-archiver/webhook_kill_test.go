package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// A webhook event answered 202 survives a SIGKILL of the daemon right after
// the answer, before it was acted on: the next start acts on it, and the
// message it told of is archived, with no cron run in between.
func TestWebhookEventSurvivesSIGKILLAfter202(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs its daemon for some seconds")
	}
	dir := t.TempDir()
	bin := crashBuildArchiver(t, dir)
	sim, err := cekatsim.New(cekatsim.Options{Seed: 9, Shape: cekatsim.ShapeReal, MessageCounts: []int{4, 6, 3},
		Start: time.Now().UTC().Truncate(time.Second), APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	db := sinktest.DatabaseName(t)
	const secret = "kill-secret"
	hookAddr := promFreeAddr(t)
	base := []string{
		"CEKAT_ARCHIVER_API_BASE_URL=" + api.URL, "CEKAT_ARCHIVER_API_KEY=k",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE=100000", "CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY=0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR=" + chAddr, "CEKAT_ARCHIVER_CLICKHOUSE_DATABASE=" + db,
		"CEKAT_ARCHIVER_CONVERSATIONS_IDS=" + strings.Join(sim.ConversationIDs(), ","),
		// No cron run during the test: only the event can bring the message.
		"CEKAT_ARCHIVER_SCHEDULE_SYNC=0 0 1 1 *",
		"CEKAT_ARCHIVER_WEBHOOK_LISTEN=" + hookAddr, "CEKAT_ARCHIVER_WEBHOOK_SECRET=" + secret,
		"CEKAT_ARCHIVER_LOG_FORMAT=console",
	}
	ctx := context.Background()
	store, err := sink.Open(ctx, sink.Options{Addr: []string{chAddr}, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	// First life: the start-up sync archives the history; an event starts
	// its run an hour after it (the debounce), and the webhook job's
	// schedule comes a minute after the start, so the event is only stored
	// when the kill comes.
	first := promStart(t, "first daemon", dir, cleanEnviron(append(base, "CEKAT_ARCHIVER_DAEMON_LISTEN="+promFreeAddr(t),
		"CEKAT_ARCHIVER_WEBHOOK_DEBOUNCE=1h")), bin, "run")
	waitFor(t, first, "the start-up sync", func() bool { return len(archivedIDs(t, store)) == len(sim.Truth()) })

	conv := sim.ConversationIDs()[1]
	sim.AddMessages(conv, 1)
	var newest cekatsim.TruthMessage
	for _, m := range sim.Truth() {
		if m.ConversationID == conv && !m.Timestamp.Before(newest.Timestamp) {
			newest = m
		}
	}
	body, err := json.Marshal(map[string]any{"event": "message.received", "timestamp": time.Now().UTC().Format(time.RFC3339),
		"data": map[string]any{"id": newest.ID, "from": "+628123", "body": "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+hookAddr+"/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Cekat-Signature", webhook.Sign([]byte(secret), body, "hex"))
	var resp *http.Response
	waitFor(t, first, "the webhook endpoint", func() bool {
		r, err := http.DefaultClient.Do(req.Clone(ctx))
		if err != nil {
			return false
		}
		resp = r
		return true
	})
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("event answered %d, want 202", resp.StatusCode)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	if archivedIDs(t, store)[newest.ID] {
		t.Fatal("the message was archived before the kill: the test says nothing")
	}
	// Stored before the 202, not acted on yet.
	pending, err := store.PendingWebhookEvents(ctx, time.Time{}, 10)
	if err != nil || len(pending) != 1 || pending[0].MessageID != newest.ID {
		t.Fatalf("after the kill, pending events %+v (%v); want the one event", pending, err)
	}

	// Second life: the stored event is acted on at start.
	second := promStart(t, "second daemon", dir, cleanEnviron(append(base, "CEKAT_ARCHIVER_DAEMON_LISTEN="+promFreeAddr(t),
		"CEKAT_ARCHIVER_WEBHOOK_DEBOUNCE=100ms")), bin, "run")
	waitFor(t, second, "the message the event told of", func() bool { return archivedIDs(t, store)[newest.ID] })
	waitFor(t, second, "the event marked done", func() bool {
		pending, err := store.PendingWebhookEvents(ctx, time.Time{}, 10)
		return err == nil && len(pending) == 0
	})
	if code := second.stop(30 * time.Second); code != 0 {
		t.Errorf("daemon exited %d after SIGTERM", code)
	}
}

// waitFor is sinktest.WaitFor for a condition on the daemon p: it fails at
// once, with the daemon's output, should the daemon exit first.
func waitFor(t *testing.T, p *promProc, what string, ok func() bool) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the daemon's output:\n%s", promTail(p.out.String(), 4000))
		}
	})
	sinktest.WaitFor(t, what, func() bool {
		if p.exited() {
			t.Fatalf("waiting for %s: the daemon exited", what)
		}
		return ok()
	})
}

func archivedIDs(t *testing.T, store *sink.Store) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	rows, err := store.Conn().Query(context.Background(), "SELECT DISTINCT message_id FROM "+store.TableName("messages"))
	if err != nil {
		return out // not migrated yet
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}
