// CRC-32, FNV-1a and SHA-256 (see core/hash.h).
#include "scorch/core/hash.h"

#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <vector>

#include "scorch/core/error.h"

namespace scorch {

uint32_t crc32_of(const std::string& s) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (size_t off = 0; off < s.size();) {  // uInt lengths: pieces of at most 1 GiB
    const size_t n = std::min<size_t>(s.size() - off, size_t{1} << 30);
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(s.data() + off), static_cast<uInt>(n));
    off += n;
  }
  return static_cast<uint32_t>(crc);
}

uint64_t fnv1a64(const char* data, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 1099511628211ULL;
  return h;
}

std::string fnv1a64_hex(const std::string& s) { return fmt::format("{:016x}", fnv1a64(s.data(), s.size())); }

std::string file_fnv1a64_hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCORCH_CHECK(in, "{}: cannot read ({})", path, std::strerror(errno));
  uint64_t h = kFnv1aOffset;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) h = fnv1a64(buf, static_cast<size_t>(in.gcount()), h);
  SCORCH_CHECK(in.eof(), "{}: read error ({})", path, std::strerror(errno));
  return fmt::format("{:016x}", h);
}

std::string file_sha256_hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SCORCH_CHECK(in, "{}: cannot read ({})", path, std::strerror(errno));
  Sha256 h;
  std::vector<char> buf(size_t{1} << 20);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    h.add(buf.data(), static_cast<size_t>(in.gcount()));
  }
  SCORCH_CHECK(in.eof(), "{}: read error ({})", path, std::strerror(errno));
  return h.hex();
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  SCORCH_CHECK(ctx_ && EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) == 1,
               "SHA-256: OpenSSL refused to start");
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

Sha256& Sha256::add(const void* data, size_t n) {
  SCORCH_CHECK(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n) == 1, "SHA-256 update failed");
  return *this;
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SCORCH_CHECK(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len) == 1 && len == 32, "SHA-256 failed");
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

std::string sha256_hex(const std::string& s) { return Sha256().add(s).hex(); }

std::string random_hex_id(int digits) {
  std::random_device rd;
  std::string out;
  while (static_cast<int>(out.size()) < digits) out += fmt::format("{:08x}", rd());
  return out.substr(0, static_cast<size_t>(digits));
}

}  // namespace scorch
