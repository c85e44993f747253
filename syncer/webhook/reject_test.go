package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A rejected signature is logged, once a minute at most, with how many
// were left out since the last line.
func TestRejectedSignaturesAreLoggedSampled(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	r, err := New(Options{Secret: []byte("s3cret"), Store: &memStore{}, Logger: zap.New(core), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"event":"message.received","data":{"id":"m1"}}`
	send := func(sig string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		req.Header.Set(DefaultSignatureHeader, sig)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("answered %d, want 401", rec.Code)
		}
	}
	for range 5 {
		send(Sign([]byte("wrong secret"), []byte(body), EncodingHex))
	}
	send("")
	lines := logs.FilterMessageSnippet("bad or missing signature").All()
	if len(lines) != 1 {
		t.Fatalf("%d lines for 6 rejections in a minute, want 1", len(lines))
	}
	if f := lines[0].ContextMap(); f["reason"] != "signature does not match the body" || f["header"] != DefaultSignatureHeader ||
		f["remote_addr"] == "" || f["rejected_not_logged_before"] != int64(0) {
		t.Errorf("first line: %v", f)
	}
	now = now.Add(61 * time.Second)
	send("")
	lines = logs.FilterMessageSnippet("bad or missing signature").All()
	if len(lines) != 2 {
		t.Fatalf("%d lines after a minute, want 2", len(lines))
	}
	if f := lines[1].ContextMap(); f["reason"] != "no signature header" || f["rejected_not_logged_before"] != int64(5) {
		t.Errorf("second line: %v", f)
	}
}
