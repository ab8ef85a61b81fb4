// Package sms is the seam between the bridge and an SMS provider: the
// Provider interface (send one text to many numbers, classify the answer),
// the optional Inbound interface (parse the callbacks a provider POSTs
// back), the types both speak (Result, Error, Event), the shape of a phone
// number (NormalizeNumber, MaskNumber), and the providers' metrics, which
// carry the account that sent.
//
// It imports nothing from the project. A provider lives in a subpackage
// (sms/touchbase); sms/fake is a fake of TouchBasePro's API for tests and
// dry runs.
package sms
