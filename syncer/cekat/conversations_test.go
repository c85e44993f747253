package cekat

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The conversation list pages by the cursor the answer gives, passed back
// verbatim, and decodes the New Open API's item shape.
func TestListConversations(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/conversations" || r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, `{"success":false,"error":"no"}`, http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		asked = append(asked, q.Get("cursor_id")+"|"+q.Get("cursor_ts")+"|"+q.Get("limit")+"|"+q.Get("stage_status"))
		next := `{"cursor_id":"c 2","cursor_ts":"2026-04-10T09:51:19.885"}`
		if q.Get("cursor_id") != "" {
			next = "null"
		}
		fmt.Fprintf(w, `{"success":true,"data":[{"id":"c%s","inbox_id":"i1","contact_phone":"62812","platform_type":"whatsapp",
			"stage_status":"pending","labels":[{"id":"l1","name":"vip"}],"last_message":{"message":"hi","created_at":"2026-04-10T09:24:23.237+00:00"},
			"created_at":"2026-04-01T00:00:00+00:00","resolved_at":null},{"no":"id"}],"metadata":{"next_cursor":%s}}`, q.Get("cursor_id"), next)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, APIKey: "k", Auth: AuthBearer})
	if err != nil {
		t.Fatal(err)
	}
	f := ConversationFilter{Limit: 100, StageStatus: "pending"}
	p, err := c.ListConversations(context.Background(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Conversations) != 1 || len(p.Bad) != 1 || p.Next == nil || p.Next.ID != "c 2" || p.Next.TS != "2026-04-10T09:51:19.885" {
		t.Fatalf("first page: %+v", p)
	}
	got := p.Conversations[0]
	want := time.Date(2026, 4, 10, 9, 24, 23, 237e6, time.UTC)
	if got.LastMessageAt == nil || !got.LastMessageAt.Equal(want) || got.ResolvedAt != nil || len(got.Labels) != 1 || got.Labels[0] != "vip" {
		t.Errorf("decoded %+v", got)
	}
	p, err = c.ListConversations(context.Background(), f, p.Next)
	if err != nil || p.Next != nil {
		t.Fatalf("last page: %+v, %v", p, err)
	}
	if asked[1] != "c 2|2026-04-10T09:51:19.885|100|pending" {
		t.Errorf("second request asked %q", asked[1])
	}
}
