package oncall

import (
	"testing"
	"time"
)

// fuzzZones have DST changes of every kind: forward and back by an hour,
// by half an hour, at midnight, in both hemispheres, and none.
var fuzzZones = []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Havana", "Australia/Sydney", "Asia/Kolkata", "UTC"}

// FuzzRotation checks the engine's invariants for arbitrary rotations
// and instants: the turn at t began at or before t and the next begins
// after it; handoffs keep their order; "until" is after t, the members
// change there and not a second before.
func FuzzRotation(f *testing.F) {
	f.Add(uint8(0), uint16(7*24*60), int64(0), int64(12*24*60), uint8(3))      // weekly, Berlin
	f.Add(uint8(0), uint16(60), int64(87*24*60), int64(87*24*60+90), uint8(3)) // hourly on the spring change
	f.Add(uint8(1), uint16(12*60), int64(66*24*60), int64(304*24*60), uint8(3))
	f.Add(uint8(2), uint16(30), int64(276*24*60), int64(276*24*60+120), uint8(2))
	f.Add(uint8(3), uint16(24*60), int64(66*24*60), int64(66*24*60+30), uint8(2))
	f.Fuzz(func(t *testing.T, zone uint8, shiftMin uint16, startMin, atMin int64, members uint8) {
		if shiftMin == 0 || members == 0 {
			return
		}
		loc, err := time.LoadLocation(fuzzZones[int(zone)%len(fuzzZones)])
		if err != nil {
			t.Fatal(err)
		}
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		start := base.Add(time.Duration(startMin%(2*366*24*60)) * time.Minute)
		at := base.Add(time.Duration(atMin%(2*366*24*60)) * time.Minute).Add(17 * time.Second)
		r := &rotation{shift: time.Duration(shiftMin) * time.Minute, start: start}
		for i := range int(members%5) + 1 {
			r.members = append(r.members, Member{Name: string(rune('a' + i)), Number: "+2783000000" + string(rune('0'+i))})
		}
		s := &Schedule{Name: "f", Location: loc, rotation: r}

		k := r.turn(at, loc)
		if h, next := r.handoff(k, loc), r.handoff(k+1, loc); h.After(at) || !next.After(at) {
			t.Fatalf("turn %d at %s: begins %s, next %s", k, at, h, next)
		}
		for j := k - 3; j < k+3; j++ {
			if r.handoff(j+1, loc).Before(r.handoff(j, loc)) {
				t.Fatalf("handoff %d (%s) before handoff %d (%s)", j+1, r.handoff(j+1, loc), j, r.handoff(j, loc))
			}
		}
		w := r.start.Add(time.Duration(k) * r.shift)
		if got := wallOf(r.handoff(k, loc), loc); !got.Equal(w) && len(instants(w, loc)) > 0 {
			t.Fatalf("handoff %d shows %s, want %s", k, got, w)
		}

		oc := s.At(at, nil)
		if len(r.members) == 1 {
			if !oc.Until.IsZero() {
				t.Fatalf("one member, yet a handoff at %s", oc.Until)
			}
			return
		}
		if !oc.Until.After(at) || sameMembers(oc.Next.Members, oc.Members) {
			t.Fatalf("at %s: %v until %s then %v", at, oc.Members, oc.Until, oc.Next.Members)
		}
		if before := s.Who(oc.Until.Add(-time.Second), nil); before.Turn != k && !sameMembers(before.Members, oc.Members) {
			t.Fatalf("at %s: %v until %s, but %v a second before", at, oc.Members, oc.Until, before.Members)
		}
	})
}

func BenchmarkWho(b *testing.B) {
	s := mustCompile(b, schedules)["holidays"]
	t := time.Date(2026, 12, 25, 13, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		s.Who(t, nil)
	}
}

func BenchmarkAt(b *testing.B) {
	s := mustCompile(b, schedules)["layered"]
	t := time.Date(2026, 3, 25, 16, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		s.At(t, nil)
	}
}

func BenchmarkWhoRotation(b *testing.B) {
	s := mustCompile(b, schedules)["layered"] // two layers checked, then the rotation
	t := time.Date(2026, 3, 25, 16, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		s.Who(t, nil)
	}
}
