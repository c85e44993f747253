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

// dailyViewQuery is the CREATE statement of DailyView for a zone; dailyViewComments
// describes its columns.
func dailyViewQuery(view, rollup, zone string) string {
	return `CREATE VIEW IF NOT EXISTS ` + view + ` AS
SELECT day, direction, type, sender_role, messages, delivered, read, failed,
    if(empty(d), NULL, toNullable(dq[1])) AS delivery_p50_seconds,
    if(empty(d), NULL, toNullable(dq[2])) AS delivery_p95_seconds,
    if(empty(r), NULL, toNullable(rq[1])) AS read_p50_seconds,
    if(empty(r), NULL, toNullable(rq[2])) AS read_p95_seconds,
    if(empty(rd), NULL, toNullable(rdq[1])) AS read_after_delivery_p50_seconds,
    if(empty(rd), NULL, toNullable(rdq[2])) AS read_after_delivery_p95_seconds
FROM
(
    SELECT day, direction, type, sender_role, messages, delivered, read, failed, d, r, rd,
        arrayReduce('quantilesExact(0.5, 0.95)', d) AS dq,
        arrayReduce('quantilesExact(0.5, 0.95)', r) AS rq,
        arrayReduce('quantilesExact(0.5, 0.95)', rd) AS rdq
    FROM
    (
        SELECT toDate(bucket, '` + zone + `') AS day, direction, type, sender_role,
            uniqExactMerge(messages_state) AS messages,
            uniqExactIfMerge(delivered_state) AS delivered,
            uniqExactIfMerge(read_state) AS read,
            uniqExactIfMerge(failed_state) AS failed,
            arrayMap(p -> p.2, groupUniqArrayIfMerge(delivery_seconds_state)) AS d,
            arrayMap(p -> p.2, groupUniqArrayIfMerge(read_seconds_state)) AS r,
            arrayMap(p -> p.2, groupUniqArrayIfMerge(read_after_delivery_seconds_state)) AS rd
        FROM ` + rollup + `
        GROUP BY day, direction, type, sender_role
    )
)`
}

// dailyViewComments are the comments of DailyView's columns, in order. Counts add up across
// rows; percentiles do not (take them from message_rollup with groupUniqArrayIfMerge over the
// rows wanted). ClickHouse 18.16 cannot comment a view's columns: there the package
// documentation and the guide say the same.
var dailyViewComments = [][2]string{
	{"day", "The day of the send time, in the zone of the archiver's analytics.timezone."},
	{"direction", "As messages.direction."},
	{"type", "As messages.type."},
	{"sender_role", "As messages.sender_role."},
	{"messages", "Messages sent that day."},
	{"delivered", "Of those, delivered or read (reached delivered)."},
	{"read", "Of those, read."},
	{"failed", "Of those, failed."},
	{"delivery_p50_seconds", "Median seconds from sending to delivery; NULL when no message of the row has a delivery time."},
	{"delivery_p95_seconds", "95th percentile of the seconds from sending to delivery; NULL as above."},
	{"read_p50_seconds", "Median seconds from SENDING to reading; NULL when no message of the row has a read time."},
	{"read_p95_seconds", "95th percentile of the seconds from sending to reading; NULL as above."},
	{"read_after_delivery_p50_seconds", "Median seconds from DELIVERY to reading, of the messages with both times; NULL when none."},
	{"read_after_delivery_p95_seconds", "95th percentile of the seconds from delivery to reading; NULL as above."},
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
	upToDate := strings.Contains(current, "toDate(bucket, '"+zone+"')")
	for _, c := range dailyViewComments {
		upToDate = upToDate && strings.Contains(current, c[0])
	}
	if upToDate {
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
	if ok, err := s.CurrentRelease(ctx); err != nil || !ok {
		s.log.Info("made the daily view", zap.String("view", DailyView), zap.String("zone", zone))
		return err
	}
	var comments []string
	for _, c := range dailyViewComments {
		comments = append(comments, "COMMENT COLUMN "+quoteIdent(c[0])+" "+quoteString(c[1]))
	}
	if err := s.conn.Exec(ctx, "ALTER TABLE "+s.TableName(DailyView)+s.onCluster()+" "+strings.Join(comments, ", ")); err != nil {
		return fmt.Errorf("sink: comment the columns of view %s: %w", DailyView, err)
	}
	s.log.Info("made the daily view", zap.String("view", DailyView), zap.String("zone", zone))
	return nil
}
