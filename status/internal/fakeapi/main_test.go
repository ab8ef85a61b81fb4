package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

func TestFakeAPIRejects(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		to       string
		credits  int
		code     int
		accepted map[string]bool
	}{
		{"mixed", "k", `["+27830000001","+27830000099"]`, smsfake.Unlimited, 202, map[string]bool{"+27830000001": true, "+27830000099": false}},
		{"only rejected", "k", `["+27830000099"]`, smsfake.Unlimited, 202, map[string]bool{"+27830000099": false}},
		{"none rejected", "k", `["+27830000001"]`, smsfake.Unlimited, 202, map[string]bool{"+27830000001": true}},
		{"no credits", "k", `["+27830000001","+27830000099"]`, 0, 405, nil},
		{"bad key", "wrong", `["+27830000099"]`, smsfake.Unlimited, 401, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := smsfake.New(smsfake.Options{APIKey: "k", Credits: tc.credits})
			srv := httptest.NewServer(&handler{fake: fake, key: "k", reject: []string{"+27830000099"}})
			defer srv.Close()
			req, _ := http.NewRequest("POST", srv.URL+smsfake.Path, strings.NewReader(`{"text":"hi","to":`+tc.to+`}`))
			req.Header.Set("Authorization", "Bearer "+tc.key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if tc.accepted == nil {
				return
			}
			var reply struct {
				Messages []struct {
					To       string
					Accepted bool
				}
			}
			if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, m := range reply.Messages {
				got[m.To] = m.Accepted
			}
			if len(got) != len(tc.accepted) {
				t.Errorf("entries %v, want %v", got, tc.accepted)
			}
			for n, want := range tc.accepted {
				if got[n] != want {
					t.Errorf("%s accepted=%t, want %t", n, got[n], want)
				}
			}
		})
	}
}
