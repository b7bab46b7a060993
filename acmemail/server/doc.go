// Package server obtains, checks and keeps TLS certificates for mail
// servers (SMTP submission, IMAP, POP3) over ACME, proving control of the
// host name through DNS: the dns-01 challenge of RFC 8555 for dNSName
// identifiers, answered with the DNS providers of lego
// (github.com/go-acme/lego/v5), and, experimental, the service-bound
// "dns-service-01" challenge this project proposes for SRVName
// identifiers (RFC 4985, as draft-ietf-acme-email-tls sketched it).
//
// The ACME client is acmez's, as for acmemail's S/MIME certificates; the
// account, the state directory (keystore's Servers view: servers/<host>/),
// locks and renewal information (RFC 9773) are shared with them.
//
// # Wire format (a proposal)
//
//   - dNSName: order identifier {"type":"dns","value":HOST}, challenge
//     dns-01 as in RFC 8555 §8.4.
//   - SRVName: order identifier {"type":"srvname","value":"_imaps.HOST"}
//     (RFC 4985 form "_Service.Name", service in lower case). The CA offers
//     challenge type "dns-service-01": an RFC 8555 challenge object with
//     "port" (the IANA port of the service, see [Port]). The record is TXT
//     at "_acme-challenge._PORT._SERVICE.HOST" with the value
//     base64url(SHA-256(keyAuthorization "." SERVICE "." PORT)), no padding
//     (see [BoundKeyAuthorization]). An order for services always carries
//     the dns identifier of HOST too.
//
// The certificate of a server carries exactly the dNSName HOST and one
// SRVName per service, the serverAuth extended key usage, and the key
// usage digitalSignature (plus keyEncipherment for RSA keys only);
// anything else is refused by [Check] before it is saved.
package server
