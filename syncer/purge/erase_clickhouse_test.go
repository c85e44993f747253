package purge_test

import (
	"context"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/archivetest"
	"github.com/cekat-archiver/cekat-archiver/syncer/purge"
)

// Erasing by phone number removes the webhook events too: those that named
// only a message (resolved or not), and those of a message never archived
// whose body names the number; then no row of any table names it.
func TestEraseByPhoneRemovesWebhookEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{6, 9})
	ch, ok := h.archive.(*archivetest.ClickHouseArchive)
	if !ok {
		t.Skip("webhook events are kept by ClickHouse alone")
	}
	store := ch.Store()
	h.sync()
	ctx := context.Background()
	ids := h.sim.ConversationIDs()
	target := ids[0]
	var phone, msg string
	for _, m := range h.sim.Truth() {
		if m.ConversationID == target && m.SenderPhone != "" {
			phone, msg = m.SenderPhone, m.ID
		}
	}
	if phone == "" {
		t.Fatal("no inbound message in the target conversation")
	}
	body := func(id string) string {
		return `{"event":"message.received","data":{"id":"` + id + `","from":"` + phone + `","body":"private words"}}`
	}
	now := time.Now().UTC()
	if err := store.SaveWebhookEvents(ctx,
		sink.WebhookEvent{EventID: "e1", ReceivedAt: now, Event: "message.received", MessageID: msg, Raw: body(msg), Version: 1},
		sink.WebhookEvent{EventID: "e1", ReceivedAt: now, Event: "message.received", ConversationID: target, MessageID: msg, Raw: body(msg),
			Processed: true, Version: 2},
		sink.WebhookEvent{EventID: "e2", ReceivedAt: now, Event: "message.read", MessageID: msg, Raw: `{"status":"read"}`, Version: 1},
		sink.WebhookEvent{EventID: "e3", ReceivedAt: now, Event: "message.received", MessageID: "never-archived", Raw: body("never-archived"), Version: 1},
	); err != nil {
		t.Fatal(err)
	}
	res := h.purger(false).Erase(ctx, h.archive, purge.EraseRequest{Phones: []string{phone}, Yes: true})
	if err := res.Failure(); err != nil {
		t.Fatalf("erase: %v", err)
	}
	if res.Unlinked["webhook_events"] != 1 || len(res.PhoneRowsLeft) != 0 {
		t.Errorf("unlinked rows %v, rows naming the number left %v; want 1 unlinked event, none left", res.Unlinked, res.PhoneRowsLeft)
	}
	var n uint64
	if err := store.Conn().QueryRow(ctx, "SELECT count() FROM "+store.TableName("webhook_events")).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d webhook event rows left after erasing the number", n)
	}
}
