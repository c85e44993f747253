package webhook

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

type memStore struct {
	mu     sync.Mutex
	events []sink.WebhookEvent
	err    error
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
				{"signed with prefix", body, "sha256=" + good, http.StatusAccepted},
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
			if len(store.events) != 2 || notified != 2 {
				t.Fatalf("%d events stored, %d notifications; want the 2 signed ones", len(store.events), notified)
			}
			e := store.events[0]
			if e.Event != "message.received" || e.MessageID != "msg_abc123" || e.Raw != body || e.EventID != store.events[1].EventID {
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
			Event{ID: "evt_1", Name: "message.read", ConversationID: "c1", MessageID: "m1"}},
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
