package cli

import "io"

// recordCounter passes an audit export through to w and counts its
// records as they go by, so `audit export` can say how many it wrote
// without buffering the trail. It relies on the export's framing
// (docs/api.md): JSON is an array with one record a line, so a record is
// a line that starts with '{' (json.Marshal never writes a raw newline);
// CSV is a header and one row a record, where a newline inside a quoted
// field does not end the row ("" inside quotes toggles twice, so it
// leaves the state as it was).
type recordCounter struct {
	w       io.Writer
	csv     bool
	n       int64 // complete CSV rows (the header too) or JSON records
	inQuote bool  // CSV: inside a quoted field
	lineBeg bool  // JSON: the previous byte was a newline
	partRow bool  // CSV: bytes seen since the last row ended
}

func newRecordCounter(w io.Writer, format string) *recordCounter {
	return &recordCounter{w: w, csv: format == "csv"}
}

func (c *recordCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	for _, b := range p[:n] {
		if c.csv {
			switch {
			case b == '"':
				c.inQuote = !c.inQuote
				c.partRow = true
			case b == '\n' && !c.inQuote:
				c.n++
				c.partRow = false
			default:
				c.partRow = true
			}
			continue
		}
		if c.lineBeg && b == '{' {
			c.n++
		}
		c.lineBeg = b == '\n'
	}
	return n, err
}

// records is how many records went through.
func (c *recordCounter) records() int64 {
	if !c.csv {
		return c.n
	}
	rows := c.n
	if c.partRow {
		rows++ // a last row without its newline
	}
	return max(rows-1, 0) // less the header
}
