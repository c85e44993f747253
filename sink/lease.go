package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// LeaseRow is a holder's row of archiver_leases, as last written.
type LeaseRow struct {
	Lease     string
	Holder    string
	Host      string
	PID       uint32
	Since     time.Time
	Heartbeat time.Time
	Expires   time.Time
	Released  bool
	Version   uint64
}

// WriteLease stores a version of a holder's row: heartbeat now and expiry
// ttl later, on the server's clock, and since as given (now when zero).
func (s *Store) WriteLease(ctx context.Context, r LeaseRow, ttl time.Duration) error {
	since, args := "now()", []any{r.Lease, r.Holder, r.Host, r.PID}
	if !r.Since.IsZero() {
		since = "toDateTime(?, 'UTC')"
		args = append(args, r.Since.UTC().Unix())
	}
	args = append(args, int64(ttl/time.Second), boolU8(r.Released), r.Version)
	q := "INSERT INTO " + s.TableName("archiver_leases") + " (lease, holder, host, pid, since, heartbeat, expires, released, version) " +
		"SELECT ?, ?, ?, ?, " + since + ", now(), now() + ?, ?, ?"
	if err := s.conn.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("write lease %s: %w", r.Lease, err)
	}
	return nil
}

// LiveLeases returns the holders of a lease that neither released nor let
// it expire (on the server's clock), the earliest first.
func (s *Store) LiveLeases(ctx context.Context, lease string) ([]LeaseRow, error) {
	q := "SELECT holder, argMax(host, version), argMax(pid, version), argMax(since, version) AS s, argMax(heartbeat, version), " +
		"argMax(expires, version) AS e, argMax(released, version) AS r, max(version) FROM " + s.TableName("archiver_leases") +
		" WHERE lease = ? GROUP BY holder HAVING r = 0 AND e > now() ORDER BY s, holder"
	rows, err := s.conn.Query(ctx, q, lease)
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", lease, err)
	}
	defer rows.Close()
	var out []LeaseRow
	for rows.Next() {
		if r, err := scanLease(rows, lease); err != nil {
			return nil, err
		} else {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read lease %s: %w", lease, err)
	}
	return out, nil
}

func scanLease(rows driver.Rows, lease string) (LeaseRow, error) {
	r := LeaseRow{Lease: lease}
	var released uint8
	if err := rows.Scan(&r.Holder, &r.Host, &r.PID, &r.Since, &r.Heartbeat, &r.Expires, &released, &r.Version); err != nil {
		return r, fmt.Errorf("scan lease: %w", err)
	}
	r.Released = released == 1
	r.Since, r.Heartbeat, r.Expires = r.Since.UTC(), r.Heartbeat.UTC(), r.Expires.UTC()
	return r, nil
}
