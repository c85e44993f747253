package sink_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// Stored events are what a delivery again is recognised by; the
// conversation an event was resolved to, or an archived message's, is
// found without the API; months of events past the retention are dropped
// whole, the others kept.
func TestWebhookEventLookupsAndRetention(t *testing.T) {
	st, a := purgeArchive(t)
	ctx := testContext(t)
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	old := time.Date(2026, 10, 20, 10, 0, 0, 0, time.UTC)
	if err := st.SaveWebhookEvents(ctx,
		sink.WebhookEvent{EventID: "new", ReceivedAt: now, Event: "message.received", MessageID: "m1", Version: 1},
		sink.WebhookEvent{EventID: "new", ReceivedAt: now, Event: "message.received", ConversationID: "c1", MessageID: "m1", Version: 2},
		sink.WebhookEvent{EventID: "last-month", ReceivedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Event: "message.read", Version: 1},
		sink.WebhookEvent{EventID: "old", ReceivedAt: old, Event: "message.read", MessageID: "m9", Version: 1},
	); err != nil {
		t.Fatal(err)
	}
	if err := a.AddMessages(ctx, purgeMsgRow("c2", "m2", now, "", 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seen, err := st.SeenWebhookEvents(ctx, "new", "old", "unknown")
	if err != nil || !cmp.Equal(seen, map[string]bool{"new": true, "old": true}) {
		t.Errorf("SeenWebhookEvents = %v, %v", seen, err)
	}
	convs, err := st.MessageConversations(ctx, []string{"m1", "m2", "m9"})
	if err != nil || !cmp.Equal(convs, map[string]string{"m1": "c1", "m2": "c2"}) {
		t.Errorf("MessageConversations = %v, %v", convs, err)
	}
	// 30 days before now is 2026-11-07: October goes, November stays.
	dropped, err := st.DropWebhookEventsBefore(ctx, now.Add(-30*24*time.Hour))
	if err != nil || !cmp.Equal(dropped, []string{"202610"}) {
		t.Errorf("DropWebhookEventsBefore = %v, %v; want October", dropped, err)
	}
	seen, err = st.SeenWebhookEvents(ctx, "new", "last-month", "old")
	if err != nil || !cmp.Equal(seen, map[string]bool{"new": true, "last-month": true}) {
		t.Errorf("after the drop: %v, %v; want October's event gone", seen, err)
	}
}
