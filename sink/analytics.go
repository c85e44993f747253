package sink

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"go.uber.org/zap"
)

// DailyView is the view of message_rollup by day in the zone of
// Options.AnalyticsTimezone. Migrate makes it, and makes it again when the
// zone changes: the rollup keeps quarter hours in UTC, so a change of zone
// needs no data rewritten, only this view.
const DailyView = "messages_daily"

var zoneRE = regexp.MustCompile(`^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$`)

// dailyViewQuery is the CREATE statement of DailyView for a zone.
//
// Columns: day (in the zone), direction, type, sender_role; messages sent
// that day, and of them delivered, read and failed (reached those statuses:
// see migration 00025); the median and 95th percentile of the seconds from
// sending to delivery and to reading, NULL when no message of the row has
// one. Counts add up across rows; percentiles do not (take them from
// message_rollup with groupUniqArrayIfMerge over the rows wanted).
func dailyViewQuery(view, rollup, zone string) string {
	return `CREATE VIEW IF NOT EXISTS ` + view + ` AS
SELECT day, direction, type, sender_role, messages, delivered, read, failed,
    if(empty(d), NULL, toNullable(dq[1])) AS delivery_p50_seconds,
    if(empty(d), NULL, toNullable(dq[2])) AS delivery_p95_seconds,
    if(empty(r), NULL, toNullable(rq[1])) AS read_p50_seconds,
    if(empty(r), NULL, toNullable(rq[2])) AS read_p95_seconds
FROM
(
    SELECT day, direction, type, sender_role, messages, delivered, read, failed, d, r,
        arrayReduce('quantilesExact(0.5, 0.95)', d) AS dq,
        arrayReduce('quantilesExact(0.5, 0.95)', r) AS rq
    FROM
    (
        SELECT toDate(bucket, '` + zone + `') AS day, direction, type, sender_role,
            uniqExactMerge(messages_state) AS messages,
            uniqExactIfMerge(delivered_state) AS delivered,
            uniqExactIfMerge(read_state) AS read,
            uniqExactIfMerge(failed_state) AS failed,
            arrayMap(p -> p.2, groupUniqArrayIfMerge(delivery_seconds_state)) AS d,
            arrayMap(p -> p.2, groupUniqArrayIfMerge(read_seconds_state)) AS r
        FROM ` + rollup + `
        GROUP BY day, direction, type, sender_role
    )
)`
}

// ensureDailyView makes DailyView cut days in the zone of the options,
// unless it already does. It runs on the store's own connections: a
// process starting up (sync --once under a scheduler's deadline) should not
// pay for another handshake.
func (s *Store) ensureDailyView(ctx context.Context) error {
	zone := s.opts.AnalyticsTimezone
	if zone == "" {
		zone = "UTC"
	}
	if !zoneRE.MatchString(zone) {
		return fmt.Errorf("sink: analytics time zone %q: not a zone name", zone)
	}
	var current string
	rows, err := s.conn.Query(ctx, "SELECT create_table_query FROM system.tables WHERE database = ? AND name = ?", s.database, DailyView)
	if err != nil {
		return fmt.Errorf("sink: look up view %s: %w", DailyView, err)
	}
	for rows.Next() {
		if err := rows.Scan(&current); err != nil {
			rows.Close()
			return fmt.Errorf("sink: look up view %s: %w", DailyView, err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sink: look up view %s: %w", DailyView, err)
	}
	if strings.Contains(current, "toDate(bucket, '"+zone+"')") {
		return nil
	}
	if current != "" {
		if err := s.conn.Exec(ctx, "DROP TABLE IF EXISTS "+s.TableName(DailyView)+s.onCluster()); err != nil {
			return fmt.Errorf("sink: drop view %s to change its zone: %w", DailyView, err)
		}
	}
	if err := s.conn.Exec(ctx, dailyViewQuery(s.TableName(DailyView)+s.onCluster(), s.TableName("message_rollup"), zone)); err != nil {
		return fmt.Errorf("sink: create view %s in zone %s: %w", DailyView, zone, err)
	}
	s.log.Info("made the daily view", zap.String("view", DailyView), zap.String("zone", zone))
	return nil
}
