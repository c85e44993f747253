package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ArchiveID is the identity of the archive: an id Migrate made once for
// this database. A database dropped and made again, or restored from a
// backup taken before Migrate filled it, has another; a spool file names
// the archive it was written for.
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
// were made at once, the earliest (then the smallest) is the identity.
func (s *Store) readArchiveID(ctx context.Context) (string, error) {
	var n uint64
	var id string
	q := "SELECT count(), min(archive_id) FROM (SELECT archive_id FROM " + s.TableName("archive_identity") +
		" ORDER BY created_at, archive_id LIMIT 1)"
	if err := s.conn.QueryRow(ctx, q).Scan(&n, &id); err != nil {
		return "", fmt.Errorf("read the identity of archive %s: %w", s.database, err)
	}
	return id, nil
}

// ensureArchiveID makes the archive's identity when it has none.
func (s *Store) ensureArchiveID(ctx context.Context) error {
	id, err := s.readArchiveID(ctx)
	if err != nil || id != "" {
		return err
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.TableName("archive_identity")+" (archive_id, created_at)")
	if err != nil {
		return fmt.Errorf("make the identity of archive %s: %w", s.database, err)
	}
	defer b.Abort()
	if err := b.Append(uuid.NewString(), time.Now().UTC()); err != nil {
		return fmt.Errorf("make the identity of archive %s: %w", s.database, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("make the identity of archive %s: %w", s.database, err)
	}
	return nil
}

// hasArchiveID says whether id was made for this archive.
func (s *Store) hasArchiveID(ctx context.Context, id string) (bool, error) {
	var n uint64
	q := "SELECT count() FROM " + s.TableName("archive_identity") + " WHERE archive_id = ?"
	if err := s.conn.QueryRow(ctx, q, id).Scan(&n); err != nil {
		return false, fmt.Errorf("look up the identity of archive %s: %w", s.database, err)
	}
	return n > 0, nil
}
