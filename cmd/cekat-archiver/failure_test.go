package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
)

// A run that failed because the spool's disk did names the disk and its
// directory, not ClickHouse; other failures keep their own words.
func TestFailureMessageNamesTheDisk(t *testing.T) {
	var cfg config.Config
	cfg.Sync.SpoolDir = "/var/lib/cekat-archiver/spool"
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = []string{"ch:9000"}, "cekat"
	disk := fmt.Errorf("archive: %w", fmt.Errorf("%w: write %s: %w", sink.ErrSpoolDisk, "/var/lib/x.spool", syscall.ENOSPC))
	msg := failureMessage(cfg, disk)
	for _, s := range []string{"local disk", "/var/lib/cekat-archiver/spool", "no space left on device", "not ClickHouse"} {
		if !strings.Contains(msg, s) {
			t.Errorf("%q does not say %q", msg, s)
		}
	}
	if strings.Contains(msg, "ch:9000") {
		t.Errorf("%q blames ClickHouse", msg)
	}
	if msg := failureMessage(cfg, errors.New("list conversations: 503")); msg != "sync failed: list conversations: 503" {
		t.Errorf("an API failure: %q", msg)
	}
}
