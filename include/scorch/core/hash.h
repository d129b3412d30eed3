// Checksums and content hashes, each written once: CRC-32 (zlib's, as ZIP and the
// checkpoint's /config use it), 64-bit FNV-1a (names of cached results: sample runs,
// feature caches, feature networks; neither is cryptographic), and SHA-256 (OpenSSL's) of
// the files a published number was computed from, as `sha256sum` prints it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace scorch {

// zlib's CRC-32 of `s` (any length).
uint32_t crc32_of(const std::string& s);

// 64-bit FNV-1a, fed in pieces: h = fnv1a64(more, fnv1a64(first)).
constexpr uint64_t kFnv1aOffset = 1469598103934665603ULL;
uint64_t fnv1a64(const char* data, size_t n, uint64_t h = kFnv1aOffset);
// FNV-1a of `s` as 16 hex digits.
std::string fnv1a64_hex(const std::string& s);
// FNV-1a of the bytes of the file `path` as 16 hex digits; throws naming the file.
std::string file_fnv1a64_hex(const std::string& path);

// SHA-256 of the bytes of the file `path` as 64 hex digits (`sha256sum`); throws naming
// the file.
std::string file_sha256_hex(const std::string& path);

// SHA-256 fed in pieces (OpenSSL's EVP, SHA-NI where the CPU has it): the content identity
// of a checkpoint (io/checkpoint.h) and the checksum of a provenance record.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256& add(const void* data, size_t n);
  Sha256& add(const std::string& s) { return add(s.data(), s.size()); }
  // The digest as 64 hex digits; the object takes no more input after it.
  std::string hex();

 private:
  void* ctx_;  // EVP_MD_CTX
};

// SHA-256 of `s` as 64 hex digits.
std::string sha256_hex(const std::string& s);

// A new random identifier of `digits` hex digits (std::random_device): a training
// history's branch (io/checkpoint.h's lineage).
std::string random_hex_id(int digits = 16);

}  // namespace scorch
