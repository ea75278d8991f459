// guest-levels: O0 O2 O3-power9
/* Message digests computed from scratch: SHA-256 (FIPS 180-4 test vectors, the million-'a' message,
 * every length 0..200 of a pattern), CRC-32 (table-driven and bitwise, which must agree) and
 * Adler-32, over a few hundred KiB of generated data. The digests are also written to digests.txt
 * and the data to data.bin, for the harness to compare. */
#include "check.h"
#include <inttypes.h>

struct sha256 {
  uint32_t state[8];
  uint64_t length;
  unsigned char block[64];
  size_t used;
};

static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return x >> n | x << (32 - n); }

static void sha256_block(struct sha256 *s, const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ w[i - 15] >> 3;
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ w[i - 2] >> 10;
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->state[0], b = s->state[1], c = s->state[2], d = s->state[3];
  uint32_t e = s->state[4], f = s->state[5], g = s->state[6], h = s->state[7];
  for (int i = 0; i < 64; i++) {
    const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + round_constants[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s->state[0] += a;
  s->state[1] += b;
  s->state[2] += c;
  s->state[3] += d;
  s->state[4] += e;
  s->state[5] += f;
  s->state[6] += g;
  s->state[7] += h;
}

static void sha256_init(struct sha256 *s) {
  static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->state, initial, sizeof initial);
  s->length = 0;
  s->used = 0;
}

static void sha256_update(struct sha256 *s, const void *data, size_t size) {
  const unsigned char *p = data;
  s->length += size;
  while (size) {
    const size_t take = size < 64 - s->used ? size : 64 - s->used;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    size -= take;
    if (s->used == 64) {
      sha256_block(s, s->block);
      s->used = 0;
    }
  }
}

static void sha256_hex(struct sha256 *s, char hex[65]) {
  const uint64_t bits = s->length * 8;
  const unsigned char one = 0x80, zero = 0;
  sha256_update(s, &one, 1);
  while (s->used != 56) sha256_update(s, &zero, 1);
  unsigned char length[8];
  for (int i = 0; i < 8; i++) length[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(s, length, 8);
  for (int i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08" PRIx32, s->state[i]);
}

static void sha256_of(const void *data, size_t size, char hex[65]) {
  struct sha256 s;
  sha256_init(&s);
  sha256_update(&s, data, size);
  sha256_hex(&s, hex);
}

static uint32_t crc_table[256];

static void crc_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ c >> 1 : c >> 1;
    crc_table[n] = c;
  }
}

static uint32_t crc32_table(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ c >> 8;
  return c ^ 0xffffffffu;
}

static uint32_t crc32_bitwise(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1));
  }
  return ~c;
}

static uint32_t adler32(const unsigned char *p, size_t n) {
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < n; i++) {
    a = (a + p[i]) % 65521;
    b = (b + a) % 65521;
  }
  return b << 16 | a;
}

int main(void) {
  char hex[65];
  FILE *out = fopen("digests.txt", "w");
  CHECK(out != NULL);
  sha256_of("", 0, hex);
  CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  sha256_of("abc", 3, hex);
  CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  sha256_of(two_blocks, strlen(two_blocks), hex);
  CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  struct sha256 million;
  sha256_init(&million);
  unsigned char chunk[1000];
  memset(chunk, 'a', sizeof chunk);
  for (int i = 0; i < 1000; i++) sha256_update(&million, chunk, sizeof chunk);
  sha256_hex(&million, hex);
  CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  fprintf(out, "sha256(a x 1000000) %s\n", hex);
  printf("sha256 of a million a: %s\n", hex);

  static unsigned char data[256 * 1024];
  rng_seed(256);
  for (size_t i = 0; i < sizeof data; i += 8) {
    const uint64_t r = rng_next();
    memcpy(data + i, &r, 8);
  }
  uint64_t lengths_digest = FNV_INIT;
  for (size_t length = 0; length <= 200; length++) {
    sha256_of(data, length, hex);
    lengths_digest = fnv1a(lengths_digest, hex, 64);
    if (length % 50 == 0) fprintf(out, "sha256(data[0..%zu]) %s\n", length, hex);
  }
  printf("sha256 over lengths 0..200 fnv=%016" PRIx64 "\n", lengths_digest);
  sha256_of(data, sizeof data, hex);
  printf("sha256(data) %s\n", hex);
  fprintf(out, "sha256(data) %s\n", hex);

  crc_init();
  CHECK_EQ(crc32_table((const unsigned char *)"123456789", 9), 0xcbf43926u);
  CHECK_EQ(crc32_bitwise((const unsigned char *)"123456789", 9), 0xcbf43926u);
  CHECK_EQ(adler32((const unsigned char *)"Wikipedia", 9), 0x11e60398u);
  const uint32_t crc = crc32_table(data, sizeof data);
  CHECK_EQ(crc32_bitwise(data, 64 * 1024), crc32_table(data, 64 * 1024));
  const uint32_t adler = adler32(data, sizeof data);
  printf("crc32(data) %08" PRIx32 " adler32(data) %08" PRIx32 "\n", crc, adler);
  fprintf(out, "crc32(data) %08" PRIx32 "\nadler32(data) %08" PRIx32 "\n", crc, adler);
  CHECK_EQ(fclose(out), 0);
  FILE *binary = fopen("data.bin", "wb");
  CHECK_EQ(fwrite(data, 1, sizeof data, binary), sizeof data);
  CHECK_EQ(fclose(binary), 0);
  return finish();
}
