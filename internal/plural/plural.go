// Package plural writes counts the way people read them: "1 number",
// "2 numbers", "0 alerts". Every text the bridge builds from a count goes
// through it, so no page, log line or command says "1 numbers".
package plural

import "strconv"

// Count returns n followed by one when n is 1 and by many otherwise.
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
