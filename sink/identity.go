package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// liveIdentities are the ids of archive_identity that name the archive,
// with when each was made.
const liveIdentities = "SELECT archive_id, min(created_at) AS created FROM %s GROUP BY archive_id " +
	"HAVING argMax(retired, version) = 0"

// ArchiveID is the identity of the archive: an id Migrate made once for
// this database. A database dropped and made again has another, and so has
// one given a new identity after a restore from a backup (NewArchiveID); a
// spool file names the archive it was written for.
func (s *Store) ArchiveID(ctx context.Context) (string, error) {
	id, err := s.readArchiveID(ctx)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("archive %s has no identity: run `cekat-archiver migrate`", s.database)
	}
	return id, nil
}

// readArchiveID returns the identity, "" when none was made yet. When two
// were made at once, the earliest (then the smallest) is the one named.
func (s *Store) readArchiveID(ctx context.Context) (string, error) {
	var n uint64
	var id string
	q := "SELECT count(), min(archive_id) FROM (SELECT archive_id FROM (" +
		fmt.Sprintf(liveIdentities, s.TableName("archive_identity")) + ") ORDER BY created, archive_id LIMIT 1)"
	if err := s.conn.QueryRow(ctx, q).Scan(&n, &id); err != nil {
		return "", fmt.Errorf("read the identity of archive %s: %w", s.database, err)
	}
	return id, nil
}

// hasArchiveID says whether id names this archive.
func (s *Store) hasArchiveID(ctx context.Context, id string) (bool, error) {
	var n uint64
	q := "SELECT count() FROM (" + fmt.Sprintf(liveIdentities, s.TableName("archive_identity")) + ") WHERE archive_id = ?"
	if err := s.conn.QueryRow(ctx, q, id).Scan(&n); err != nil {
		return false, fmt.Errorf("look up the identity of archive %s: %w", s.database, err)
	}
	return n > 0, nil
}

// ensureArchiveID makes the archive's identity when it has none.
func (s *Store) ensureArchiveID(ctx context.Context) error {
	id, err := s.readArchiveID(ctx)
	if err != nil || id != "" {
		return err
	}
	_, err = s.NewArchiveID(ctx)
	return err
}

// NewArchiveID gives the archive a new identity and retires the ones it
// had: spool files written for them are then replayed as another
// archive's (their rows written, their sync states dropped). For an
// archive restored from a backup, whose sync states in spool files may
// describe rows the backup lacks.
func (s *Store) NewArchiveID(ctx context.Context) (string, error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf(liveIdentities, s.TableName("archive_identity")))
	if err != nil {
		return "", fmt.Errorf("read the identity of archive %s: %w", s.database, err)
	}
	type identity struct {
		id      string
		created time.Time
	}
	var old []identity
	for rows.Next() {
		var o identity
		if err := rows.Scan(&o.id, &o.created); err != nil {
			rows.Close()
			return "", fmt.Errorf("read the identity of archive %s: %w", s.database, err)
		}
		old = append(old, o)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return "", fmt.Errorf("read the identity of archive %s: %w", s.database, err)
	}
	now := time.Now().UTC()
	id := uuid.NewString()
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.TableName("archive_identity")+" (archive_id, created_at, retired, version)")
	if err != nil {
		return "", fmt.Errorf("make the identity of archive %s: %w", s.database, err)
	}
	defer b.Abort()
	for _, o := range old {
		if err := b.Append(o.id, o.created, uint8(1), uint64(now.UnixNano())); err != nil {
			return "", fmt.Errorf("retire identity %s of archive %s: %w", o.id, s.database, err)
		}
	}
	if err := b.Append(id, now, uint8(0), uint64(now.UnixNano())); err != nil {
		return "", fmt.Errorf("make the identity of archive %s: %w", s.database, err)
	}
	if err := b.Send(); err != nil {
		return "", fmt.Errorf("make the identity of archive %s: %w", s.database, err)
	}
	return id, nil
}
