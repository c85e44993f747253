package sink

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// WebhookEvent is one webhook event as received: a row of webhook_events.
type WebhookEvent struct {
	EventID        string
	ReceivedAt     time.Time
	Event          string
	ConversationID string
	MessageID      string
	Raw            string
	Processed      bool
	Outcome        string
	Version        uint64
}

const webhookColumns = "event_id, received_at, event, conversation_id, message_id, raw, processed, outcome, version"

// SaveWebhookEvents stores events at once, not through the write buffer: a
// webhook is answered only once its event is stored.
func (s *Store) SaveWebhookEvents(ctx context.Context, events ...WebhookEvent) error {
	if len(events) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.TableName("webhook_events")+" ("+webhookColumns+")")
	if err != nil {
		return fmt.Errorf("prepare webhook event insert: %w", err)
	}
	defer b.Abort()
	for _, e := range events {
		if err := b.Append(e.EventID, dt(e.ReceivedAt), e.Event, e.ConversationID, e.MessageID, e.Raw, boolU8(e.Processed),
			e.Outcome, e.Version); err != nil {
			return fmt.Errorf("webhook event %s: %w", e.EventID, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d webhook events: %w", len(events), err)
	}
	return nil
}

// PendingWebhookEvents returns up to limit events received since since and
// not processed yet, oldest first.
func (s *Store) PendingWebhookEvents(ctx context.Context, since time.Time, limit int) ([]WebhookEvent, error) {
	q := "SELECT event_id, any(received_at) AS at, argMax(event, version), argMax(conversation_id, version), " +
		"argMax(message_id, version), argMax(raw, version), argMax(processed, version) AS p, argMax(outcome, version), max(version) FROM " +
		s.TableName("webhook_events") + " WHERE received_at >= ? GROUP BY event_id HAVING p = 0 ORDER BY at LIMIT ?"
	rows, err := s.conn.Query(ctx, q, dt(since), limit)
	if err != nil {
		return nil, fmt.Errorf("query pending webhook events: %w", err)
	}
	defer rows.Close()
	var out []WebhookEvent
	for rows.Next() {
		e, err := scanWebhookEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func scanWebhookEvent(rows driver.Rows) (WebhookEvent, error) {
	var (
		e         WebhookEvent
		at        time.Time
		processed uint8
	)
	if err := rows.Scan(&e.EventID, &at, &e.Event, &e.ConversationID, &e.MessageID, &e.Raw, &processed, &e.Outcome, &e.Version); err != nil {
		return WebhookEvent{}, fmt.Errorf("scan webhook event: %w", err)
	}
	e.ReceivedAt, e.Processed = fromDT(at), processed == 1
	return e, nil
}

// TrackConversations adds conversation ids to tracked_conversations.
func (s *Store) TrackConversations(ctx context.Context, source string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.TableName("tracked_conversations")+" (conversation_id, active, source, updated_at)")
	if err != nil {
		return fmt.Errorf("prepare tracked conversation insert: %w", err)
	}
	defer b.Abort()
	now := dt(time.Now())
	for _, id := range ids {
		if err := b.Append(id, uint8(1), source, now); err != nil {
			return fmt.Errorf("tracked conversation %s: %w", id, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("track %d conversations: %w", len(ids), err)
	}
	return nil
}

// MessageConversations returns, of the message ids, those whose
// conversation is known, with it: archived messages (message_index) and
// messages an earlier webhook event was resolved to.
func (s *Store) MessageConversations(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	q := "SELECT message_id, any(conversation_id) FROM (SELECT message_id, conversation_id FROM " + s.TableName("message_index") +
		" WHERE message_id IN ? UNION ALL SELECT message_id, conversation_id FROM " + s.TableName("webhook_events") +
		" WHERE message_id IN ? AND conversation_id != '') GROUP BY message_id"
	rows, err := s.conn.Query(largeQuery(ctx), q, groupSet(ids), groupSet(ids))
	if err != nil {
		return nil, fmt.Errorf("query the conversations of messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var msg, conv string
		if err := rows.Scan(&msg, &conv); err != nil {
			return nil, fmt.Errorf("scan the conversation of a message: %w", err)
		}
		out[msg] = conv
	}
	return out, rows.Err()
}

// SeenWebhookEvents returns, of the event ids, those already stored: a
// delivery again of one of them is a duplicate.
func (s *Store) SeenWebhookEvents(ctx context.Context, ids ...string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT event_id FROM "+s.TableName("webhook_events")+" WHERE event_id IN ?", groupSet(ids))
	if err != nil {
		return nil, fmt.Errorf("query stored webhook events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan webhook event id: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// DropWebhookEventsBefore removes the stored webhook events received before
// cutoff, a whole month at a time: the table is partitioned by month, and
// dropping a partition rewrites nothing (ClickHouse 18.16 has no TTL; a
// DELETE would rewrite every part). A month goes once all of it is before
// cutoff, so events are kept from cutoff up to a month longer. It returns
// the months dropped (YYYYMM).
func (s *Store) DropWebhookEventsBefore(ctx context.Context, cutoff time.Time) ([]string, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = 'webhook_events' AND active",
		s.database)
	if err != nil {
		return nil, fmt.Errorf("list webhook event months: %w", err)
	}
	var months []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan webhook event month: %w", err)
		}
		months = append(months, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhook event months: %w", err)
	}
	var dropped []string
	for _, p := range months {
		start, err := time.Parse("200601", strings.Trim(p, "'"))
		if err != nil {
			continue // not a month of this table's partitioning
		}
		if start.AddDate(0, 1, 0).After(cutoff) {
			continue
		}
		if err := s.conn.Exec(ctx, "ALTER TABLE "+s.TableName("webhook_events")+" DROP PARTITION "+start.Format("200601")); err != nil {
			return dropped, fmt.Errorf("drop the webhook events of %s: %w", start.Format("2006-01"), err)
		}
		dropped = append(dropped, start.Format("200601"))
	}
	return dropped, nil
}
