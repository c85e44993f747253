package sink

// Crash leaves the archive as a killed process would: its open INSERT
// dropped (the connection closes, so ClickHouse discards it) and its spool
// file left behind, unlocked, for the next archive opened on the directory.
func (a *Archive) Crash() {
	close(a.stop)
	<-a.done
	a.writing <- struct{}{}
	defer a.unlock()
	a.abortInsert()
	a.spool.f.Close()
	a.spool = nil
	a.bgCancel()
}
