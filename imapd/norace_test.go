//go:build !race

package imapd

// raceEnabled: the race detector's shadow memory, which it never gives
// back, is in the process's RSS.
const raceEnabled = false
