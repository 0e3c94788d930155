package audit

// WriteJournalForTest writes rs to a journal at path, as a lagging writer
// would.
func WriteJournalForTest(path, chain string, rs []Record) error {
	j := NewJournal(path, chain)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.append(rs); err != nil {
		return err
	}
	return j.f.Close()
}
