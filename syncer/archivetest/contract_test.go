package archivetest_test

import (
	"testing"

	"github.com/cekat-archiver/cekat-archiver/syncer/archivetest"
)

func TestMemoryArchiveKeepsTheContract(t *testing.T) {
	archivetest.Contract(t, archivetest.Memory)
}
