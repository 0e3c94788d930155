package policy

// The timezone database is embedded so `time.timezone` conditions work the
// same in a distroless container and inside the wasm filter, where there is
// no /usr/share/zoneinfo. It costs about 450 KB of binary.
import _ "time/tzdata"
