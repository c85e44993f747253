package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// NewerThan counts the archived messages of a conversation sent after t:
// whether a message sent at t is on the conversation's newest page.
func (a *Archive) NewerThan(ctx context.Context, conversationID string, t time.Time) (uint64, error) {
	var n uint64
	err := a.read(ctx, "count newer messages", "SELECT uniqExact(message_id) FROM "+a.s.TableName("messages")+
		" WHERE conversation_id = ? AND sent_at > ?", []any{conversationID, dt(t)}, func() { n = 0 },
		func(rows driver.Rows) error {
			if err := rows.Scan(&n); err != nil {
				return fmt.Errorf("scan count: %w", err)
			}
			return nil
		})
	return n, err
}
