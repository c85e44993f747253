package cekat

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The inbox listing asks for a page by number, reads the pagination the
// answer gives, keeps flat items with their conversation, and sets aside
// an item without one; a deployment without the endpoint is told apart.
func TestListInbox(t *testing.T) {
	var asked string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/messages" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"success":false,"error":"Cannot GET"}`)
			return
		}
		asked = r.URL.RawQuery
		fmt.Fprint(w, `{"success":true,"data":[
			{"id":"m2","conversation_id":"c1","message":"hi","status":"read","created_at":"2026-04-10T09:24:23.237+00:00","updated_at":"2026-04-10T09:30:00+00:00"},
			{"id":"m1","message":"no conversation","created_at":"2026-04-10T09:20:00+00:00"}],
			"metadata":{"pagination":{"current_page":3,"current_items":2,"total_page":"7","total_items":602}}}`)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.ListInbox(context.Background(), InboxFilter{InboxID: "in 1", Limit: 100, Page: 3})
	if err != nil {
		t.Fatal(err)
	}
	if asked != "inbox_id=in+1&limit=100&page=3" {
		t.Errorf("asked %q", asked)
	}
	if p.CurrentPage != 3 || p.TotalPages != 7 || p.TotalItems != 602 {
		t.Errorf("pagination %+v", p)
	}
	if len(p.Messages) != 1 || len(p.Bad) != 1 || p.Bad[0].ID != "m1" || p.Bad[0].Index != 1 {
		t.Fatalf("messages %+v, bad %+v", p.Messages, p.Bad)
	}
	m := p.Messages[0]
	if m.ConversationID != "c1" || m.Status != "read" || m.UpdatedAt == nil ||
		!m.Timestamp.Equal(time.Date(2026, 4, 10, 9, 24, 23, 237e6, time.UTC)) {
		t.Errorf("decoded %+v", m)
	}
	other, err := New(Options{BaseURL: srv.URL, OpenAPIURL: srv.URL + "/elsewhere", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ListInbox(context.Background(), InboxFilter{Page: 1}); !IsUnsupported(err) {
		t.Errorf("a 404 is not told as unsupported: %v", err)
	}
}
