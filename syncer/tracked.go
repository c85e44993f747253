package syncer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// tracked is the union of the configured ids, the ids file (read afresh at
// every run so operators can edit it) and the archive's tracked table.
func (e *Engine) tracked(ctx context.Context) ([]string, error) {
	fromFile, err := readIDsFile(e.opts.ConversationsFile)
	if err != nil {
		return nil, err
	}
	fromTable, err := e.store.TrackedConversations(ctx)
	if err != nil {
		return nil, storeErr(fmt.Errorf("read tracked conversations: %w", err))
	}
	return trackedUnion(e.opts.ConversationIDs, fromFile, fromTable), nil
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
