package syncer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// tracked is the union of the configured ids, the ids file (read afresh at
// every run so operators can edit it) and the archive's tracked table.
func (e *Engine) tracked(ctx context.Context) ([]string, error) {
	return trackedIDs(ctx, e.store, e.opts.ConversationIDs, e.opts.ConversationsFile)
}

func trackedIDs(ctx context.Context, store TrackedStore, ids []string, file string) ([]string, error) {
	fromFile, err := readIDsFile(file)
	if err != nil {
		return nil, err
	}
	fromTable, err := store.TrackedConversations(ctx)
	if err != nil {
		return nil, storeErr(fmt.Errorf("read tracked conversations: %w", err))
	}
	return trackedUnion(ids, fromFile, fromTable), nil
}

// TrackedStore is what Tracked needs of the archive.
type TrackedStore interface {
	TrackedConversations(ctx context.Context) ([]string, error)
	Conversations(ctx context.Context) (map[string]sink.ConversationRow, error)
}

// Tracked returns the conversations that runs track, of every shard,
// without asking the API: opts' ids and file, the archive's tracked table
// and, with opts.Discovery set, the conversations an earlier listing showed
// that its filters take.
func Tracked(ctx context.Context, store TrackedStore, opts Options) ([]string, error) {
	ids, err := trackedIDs(ctx, store, opts.ConversationIDs, opts.ConversationsFile)
	if err != nil || opts.Discovery == nil {
		return ids, err
	}
	rows, err := store.Conversations(ctx)
	if err != nil {
		return nil, storeErr(fmt.Errorf("read conversations: %w", err))
	}
	var found []string
	for id, row := range rows {
		if opts.Discovery.matches(row.InboxID, row.PlatformType, row.StageStatus) {
			found = append(found, id)
		}
	}
	slices.Sort(found)
	return trackedUnion(ids, found), nil
}

// readIDsFile reads one conversation id a line; blank lines and lines
// starting with # are skipped.
func readIDsFile(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("conversations file: %w", err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ids = append(ids, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("conversations file %s: %w", path, err)
	}
	return ids, nil
}

// retry says whether a conversation's last sync failed (not for being gone
// upstream, which waits GoneRetry): the next run syncs it again, whatever
// the conversation list or the polling interval say, since neither knows
// of the failure.
func retry(st sink.State) bool { return st.LastError != "" && !st.Gone }
