package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

type memStore struct {
	mu     sync.Mutex
	events []sink.WebhookEvent
	err    error
}

func (m *memStore) SeenWebhookEvents(_ context.Context, ids ...string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	out := map[string]bool{}
	for _, e := range m.events {
		for _, id := range ids {
			out[id] = out[id] || e.EventID == id
		}
	}
	return out, nil
}

func (m *memStore) SaveWebhookEvents(_ context.Context, events ...sink.WebhookEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.events = append(m.events, events...)
	return nil
}

func post(h http.Handler, body, sig string) int {
	req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
	if sig != "" {
		req.Header.Set(DefaultSignatureHeader, sig)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func TestSignedEventsAreStoredOthersChangeNothing(t *testing.T) {
	secret := []byte("s3cret")
	body := `{"event":"message.received","timestamp":"2025-03-28T10:00:00Z","data":{"id":"msg_abc123","from":"+62812345678","body":"Hello!","channel":"whatsapp"}}`
	for _, enc := range []string{EncodingHex, EncodingBase64} {
		t.Run(enc, func(t *testing.T) {
			store := &memStore{}
			notified := 0
			r, err := New(Options{Secret: secret, Encoding: enc, Store: store, Notify: func() { notified++ }, MaxBody: 4096})
			if err != nil {
				t.Fatal(err)
			}
			good := Sign(secret, []byte(body), enc)
			cases := []struct {
				name, body, sig string
				want            int
			}{
				{"signed", body, good, http.StatusAccepted},
				{"signed with prefix, again", body, "sha256=" + good, http.StatusOK},
				{"no signature", body, "", http.StatusUnauthorized},
				{"another secret", body, Sign([]byte("other"), []byte(body), enc), http.StatusUnauthorized},
				{"body changed", strings.Replace(body, "Hello", "Hullo", 1), good, http.StatusUnauthorized},
				{"garbage signature", body, "zz", http.StatusUnauthorized},
				{"too large", body + strings.Repeat(" ", 5000), Sign(secret, []byte(body+strings.Repeat(" ", 5000)), enc), http.StatusRequestEntityTooLarge},
				{"not an event", `{"data":{}}`, Sign(secret, []byte(`{"data":{}}`), enc), http.StatusBadRequest},
			}
			for _, c := range cases {
				if got := post(r, c.body, c.sig); got != c.want {
					t.Errorf("%s: HTTP %d, want %d", c.name, got, c.want)
				}
			}
			if len(store.events) != 1 || notified != 1 {
				t.Fatalf("%d events stored, %d notifications; want the signed one once", len(store.events), notified)
			}
			e := store.events[0]
			if e.Event != "message.received" || e.MessageID != "msg_abc123" || e.Raw != body {
				t.Errorf("stored %+v", e)
			}
		})
	}
}

func TestStoreFailureIsNotAccepted(t *testing.T) {
	store := &memStore{err: errors.New("down")}
	r, err := New(Options{Secret: []byte("k"), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"event":"message.read","data":{"id":"m1"}}`
	if got := post(r, body, Sign([]byte("k"), []byte(body), EncodingHex)); got != http.StatusInternalServerError {
		t.Errorf("HTTP %d when the event cannot be stored, want 500 (the sender retries)", got)
	}
}

func TestParseShapes(t *testing.T) {
	for _, c := range []struct {
		body string
		want Event
	}{
		{`{"id":"evt_1","object":"event","timestamp":1743156000,"event_name":"message.read","data":{"id":"m1","conversation_id":"c1"}}`,
			Event{ID: "evt_1", Name: "message.read", ConversationID: "c1", MessageID: "m1", Time: time.Unix(1743156000, 0).UTC()}},
		{`{"event":"message.received","timestamp":"2025-03-28T10:00:00Z","data":{"id":"m2"}}`,
			Event{Name: "message.received", MessageID: "m2", Time: time.Date(2025, 3, 28, 10, 0, 0, 0, time.UTC)}},
		{`{"id":"evt_2","event_type":"conversation.created","data":{"id":"c9"}}`,
			Event{ID: "evt_2", Name: "conversation.created", ConversationID: "c9"}},
		{`{"event":"ticket.created","data":{"id":7}}`, Event{Name: "ticket.created", MessageID: "7"}},
	} {
		got, err := Parse([]byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if c.want.ID == "" {
			c.want.ID = got.ID
			if !strings.HasPrefix(got.ID, "sha256:") {
				t.Errorf("id of an event without one: %q", got.ID)
			}
		}
		if got != c.want {
			t.Errorf("Parse(%s) = %+v, want %+v", c.body, got, c.want)
		}
	}
	if _, err := Parse(bytes.Repeat([]byte("x"), 3)); err == nil {
		t.Error("garbage parsed")
	}
}

// A delivery again of an event, by its id or, without one, by its body, is
// answered 200, counted duplicate and stored once; one delivered while the
// first is being stored too.
func TestDuplicatesAreAnsweredAndNotStoredAgain(t *testing.T) {
	secret := []byte("k")
	store := &memStore{}
	reg := prometheus.NewRegistry()
	r, err := New(Options{Secret: secret, Store: store, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	withID := `{"id":"evt_1","timestamp":"` + now + `","event_name":"message.read","data":{"id":"m1"}}`
	sameID := `{"id":"evt_1","timestamp":"` + now + `","event_name":"message.read","data":{"id":"m1","status":"read"}}`
	noID := `{"event":"message.received","timestamp":"` + now + `","data":{"id":"m2"}}`
	for i, c := range []struct {
		body string
		want int
	}{{withID, 202}, {withID, 200}, {sameID, 200}, {noID, 202}, {noID, 200}, {noID, 200}} {
		if got := post(r, c.body, Sign(secret, []byte(c.body), EncodingHex)); got != c.want {
			t.Errorf("post %d: HTTP %d, want %d", i, got, c.want)
		}
	}
	if len(store.events) != 2 {
		t.Errorf("%d events stored, want 2", len(store.events))
	}
	if got := testutil.ToFloat64(r.events.WithLabelValues("message.read", "duplicate")) +
		testutil.ToFloat64(r.events.WithLabelValues("message.received", "duplicate")); got != 4 {
		t.Errorf("duplicates counted: %v, want 4", got)
	}
}

// Events out of their time window are refused: a captured body replayed a
// day later, or one dated ahead of the clock.
func TestEventsOutOfTheirWindowAreRefused(t *testing.T) {
	secret := []byte("k")
	store := &memStore{}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r, err := New(Options{Secret: secret, Store: store, MaxAge: 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   string
		want int
	}{
		{`"2026-12-07T11:00:00Z"`, 202},
		{`1796637600`, 202}, // 2026-12-07T10:00:00Z
		{`"2026-12-06T11:59:00Z"`, 400},
		{`"2026-12-07T12:30:00Z"`, 400},
		{`1796540400`, 400}, // 2026-12-06T07:00:00Z
	} {
		body := `{"timestamp":` + c.at + `,"event_name":"message.read","data":{"id":"m1"}}`
		if got := post(r, body, Sign(secret, []byte(body), EncodingHex)); got != c.want {
			t.Errorf("event at %s: HTTP %d, want %d", c.at, got, c.want)
		}
	}
}

// While ClickHouse is away events are kept in the journal and answered
// 202; a delivery again is a duplicate; Replay stores them once it is back.
func TestJournalKeepsEventsWhileClickHouseIsAway(t *testing.T) {
	secret := []byte("k")
	store := &memStore{err: errors.New("down")}
	path := filepath.Join(t.TempDir(), "webhook.journal")
	j, err := OpenJournal(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Secret: secret, Store: store, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for i := range 20 {
		bodies = append(bodies, fmt.Sprintf(`{"id":"evt_%d","event_name":"message.read","data":{"id":"m%d"}}`, i, i))
	}
	for _, b := range append(bodies, bodies[3]) {
		want := http.StatusAccepted
		if b == bodies[3] && j.Has("evt_3") {
			want = http.StatusOK
		}
		if got := post(r, b, Sign(secret, []byte(b), EncodingHex)); got != want {
			t.Errorf("HTTP %d while ClickHouse is away, want %d", got, want)
		}
	}
	// A crash: the next process finds them, a torn last line aside.
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`0badc0de {"event_id":"torn`)
	f.Close()
	j, err = OpenJournal(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Len() != 20 {
		t.Fatalf("%d events in the journal after a restart, want 20", j.Len())
	}
	if _, _, err := j.Replay(context.Background(), store); err == nil {
		t.Fatal("replayed into a store that is away")
	}
	store.err = nil
	stored, skipped, err := j.Replay(context.Background(), store)
	if err != nil || stored != 20 || skipped != 1 || len(store.events) != 20 || j.Len() != 0 {
		t.Fatalf("replay: %d stored, %d skipped, %v; store holds %d, journal %d", stored, skipped, err, len(store.events), j.Len())
	}
	if e := store.events[5]; e.EventID != "evt_5" || e.MessageID != "m5" || e.Raw != bodies[5] || e.ReceivedAt.IsZero() {
		t.Errorf("replayed %+v", e)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Errorf("journal after the replay: %v, %v; want empty", fi, err)
	}
}

// No more than MaxInFlight requests are handled at once; the others are
// answered 503 at once, before their body is read.
func TestRequestsInFlightAreBounded(t *testing.T) {
	store := &memStore{}
	r, err := New(Options{Secret: []byte("k"), Store: store, MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	var held []*io.PipeWriter
	var wg sync.WaitGroup
	for range 2 {
		pr, pw := io.Pipe()
		held = append(held, pw)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(srv.URL, "application/json", pr)
			if err == nil {
				resp.Body.Close()
			}
		}()
		pw.Write([]byte("{")) // the handler is reading this body
	}
	// Both slots are taken once each handler has read its first byte; a
	// third request then finds none.
	for {
		if len(r.slots) == 2 {
			break
		}
		runtime.Gosched()
	}
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third request: HTTP %d, want 503", resp.StatusCode)
	}
	for _, pw := range held {
		pw.Close()
	}
	wg.Wait()
}

// One process at a time holds a journal: a replay empties the file.
func TestJournalIsHeldByOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhook.journal")
	j, err := OpenJournal(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(path, 1<<20); !errors.Is(err, ErrJournalInUse) {
		t.Errorf("a second open: %v, want ErrJournalInUse", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = OpenJournal(path, 1<<20)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	j.Close()
	var none *Journal
	if none.Has("x") || none.Len() != 0 || none.Close() != nil {
		t.Error("a nil journal keeps something")
	}
}

// appendingStore journals an event while a replay writes to it, as the
// receiver does when a request comes in meanwhile.
type appendingStore struct {
	memStore
	j    *Journal
	late sink.WebhookEvent
}

func (a *appendingStore) SaveWebhookEvents(ctx context.Context, events ...sink.WebhookEvent) error {
	if a.late.EventID != "" {
		if err := a.j.Append(a.late); err != nil {
			return err
		}
		a.late = sink.WebhookEvent{}
	}
	return a.memStore.SaveWebhookEvents(ctx, events...)
}

// An event kept while a replay writes to ClickHouse stays in the journal
// for the next replay: the replay removes only what it stored.
func TestJournalKeepsWhatCameDuringAReplay(t *testing.T) {
	j, err := OpenJournal(filepath.Join(t.TempDir(), "webhook.journal"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := range 3 {
		if err := j.Append(sink.WebhookEvent{EventID: fmt.Sprintf("e%d", i), Event: "message.read", Raw: "{}", Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	store := &appendingStore{j: j, late: sink.WebhookEvent{EventID: "late", Event: "message.read", Raw: "{}", Version: 1}}
	if n, _, err := j.Replay(context.Background(), store); err != nil || n != 3 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	if j.Len() != 1 || !j.Has("late") || j.Has("e0") {
		t.Fatalf("journal after the replay: %d events, late kept %v", j.Len(), j.Has("late"))
	}
	if n, _, err := j.Replay(context.Background(), store); err != nil || n != 1 || len(store.events) != 4 || j.Len() != 0 {
		t.Errorf("second replay: %d, %v; %d stored, %d left", n, err, len(store.events), j.Len())
	}
}
