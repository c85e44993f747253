package archivetest_test

import (
	"testing"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/archivetest"
)

// The ClickHouse archive keeps the contract the archive in memory is held
// to, so the engine's and the purge's rules tested in memory hold for it.
func TestClickHouseArchiveKeepsTheContract(t *testing.T) {
	sinktest.Addr(t) // skips without a test server
	archivetest.Contract(t, archivetest.ClickHouse)
}
