#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Generates throwaway certificates for the TLS tests into DIR (which must
# exist). Works with Debian bookworm's OpenSSL 3.0, whose `x509` has no
# -not_before: certificates with chosen validity dates go through `openssl ca`
# (-startdate/-enddate) with a minimal configuration written here.
#
#   ca.pem / ca.key                  test CA (the only trust anchor the tests use)
#   server.pem / server.key          CN=localhost, SAN DNS:localhost, IP:127.0.0.1, by the CA
#   expired.pem / expired.key        same names, valid 2020-01-01 .. 2020-02-01, by the CA
#   wrong.pem / wrong.key            CN=wrong.example, SAN DNS:wrong.example, by the CA
#   selfsigned.pem / selfsigned.key  CN=localhost with SAN, self-signed
#   mismatch.key                     a key that matches none of the certificates
#
# Usage: certs.sh DIR
set -eu

dir=${1:?usage: certs.sh DIR}
cd "$dir"

ossl() {
    openssl "$@" 2>/dev/null || { echo "certs.sh: openssl $* failed" >&2; exit 1; }
}

newkey() {
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 3650 -subj "/CN=coronet test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# `openssl ca` keeps its state in files; the database makes it refuse two
# certificates with one subject unless unique_subject is off.
mkdir -p ca.db
: > ca.db/index.txt
echo "unique_subject = no" > ca.db/index.txt.attr
cat > ca.cnf <<'EOF'
[ca]
default_ca = test_ca
[test_ca]
dir = .
database = ca.db/index.txt
new_certs_dir = ca.db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = policy_any
copy_extensions = copy
rand_serial = yes
[policy_any]
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
EOF

# issue NAME CN SAN START END: a CA-signed leaf with the given validity.
issue() {
    newkey "$1.key"
    ossl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" -addext "subjectAltName=$3"
    ossl ca -batch -config ca.cnf -extensions leaf -notext -in "$1.csr" -out "$1.pem" \
        -startdate "$4" -enddate "$5"
    rm -f "$1.csr"
}

issue server localhost "DNS:localhost,IP:127.0.0.1" 20200101000000Z 20991231000000Z
issue expired localhost "DNS:localhost,IP:127.0.0.1" 20200101000000Z 20200201000000Z
issue wrong wrong.example "DNS:wrong.example" 20200101000000Z 20991231000000Z

ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout selfsigned.key \
    -out selfsigned.pem -days 3650 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"

newkey mismatch.key
