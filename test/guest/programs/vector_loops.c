// guest-levels: O0 O2 O3-power9
/* Loops the vectoriser turns into VMX/VSX code at -O3 (sums and dot products, saxpy, byte
 * saturation, min/max, type conversions, interleaving, reductions, conditional stores), each
 * checked against the same computation done one element at a time behind an opaque barrier; and
 * AltiVec intrinsics used directly: permutes, splats, merges, packs, compares, saturating
 * arithmetic, multiply-sum, rotates and shifts by element. */
#include "check.h"
#include <altivec.h>
#include <inttypes.h>

#define N 1027 /* not a multiple of any vector length: the loops have tails */

static int32_t ia[N], ib[N], ic[N];
static uint8_t ba[N], bb[N], bc[N];
static int16_t ha[N], hb[N];
static float fa[N], fb[N], fc[N];
static double da[N], db[N];
static int64_t la[N];

static void fill(void) {
  rng_seed(1027);
  for (int i = 0; i < N; i++) {
    ia[i] = (int32_t)rng_next();
    ib[i] = (int32_t)(rng_next() >> 40) - (1 << 23);
    ba[i] = (uint8_t)rng_next();
    bb[i] = (uint8_t)rng_next();
    ha[i] = (int16_t)rng_next();
    hb[i] = (int16_t)rng_next();
    fa[i] = (float)((int)(rng_next() % 20001) - 10000) / 64;
    fb[i] = (float)((int)(rng_next() % 20001) - 10000) / 128;
    da[i] = (double)(int64_t)(rng_next() >> 12) / 1e6;
    db[i] = (double)(int64_t)(rng_next() >> 20) / 1e3;
  }
}

static __attribute__((noinline)) int64_t sum32(const int32_t *a, int n) {
  int64_t s = 0;
  for (int i = 0; i < n; i++) s += a[i];
  return s;
}

static __attribute__((noinline)) void saxpy(float *y, const float *x, float k, int n) {
  for (int i = 0; i < n; i++) y[i] = k * x[i] + y[i];
}

static __attribute__((noinline)) void saturating_add(uint8_t *out, const uint8_t *a, const uint8_t *b, int n) {
  for (int i = 0; i < n; i++) {
    const unsigned s = (unsigned)a[i] + b[i];
    out[i] = (uint8_t)(s > 255 ? 255 : s);
  }
}

static __attribute__((noinline)) void minmax(int32_t *out, const int32_t *a, const int32_t *b, int n) {
  for (int i = 0; i < n; i++) out[i] = (a[i] < b[i] ? a[i] : b[i]) ^ (a[i] > b[i] ? a[i] : b[i]) >> 3;
}

static __attribute__((noinline)) int64_t dot16(const int16_t *a, const int16_t *b, int n) {
  int64_t s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static __attribute__((noinline)) void widen_convert(double *out, const int32_t *a, int n) {
  for (int i = 0; i < n; i++) out[i] = (double)a[i] * 0.5;
}

static __attribute__((noinline)) void narrow_convert(int32_t *out, const float *a, int n) {
  for (int i = 0; i < n; i++) out[i] = (int32_t)a[i];
}

static __attribute__((noinline)) void conditional(int32_t *out, const int32_t *a, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] & 1 ? a[i] * 3 : -a[i];
}

static __attribute__((noinline)) double reduce_double(const double *a, const double *b, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static __attribute__((noinline)) void interleave(int64_t *out, const int32_t *a, const int32_t *b, int n) {
  for (int i = 0; i < n / 2; i++) out[i] = (int64_t)a[2 * i] * b[2 * i + 1] - a[2 * i + 1];
}

static __attribute__((noinline)) void byte_shift(uint8_t *out, const uint8_t *a, int n) {
  for (int i = 0; i < n; i++) out[i] = (uint8_t)(a[i] >> 3 | a[i] << 5);
}

static void loops(void) {
  uint64_t digest = FNV_INIT;
  int64_t reference = 0;
  for (int i = 0; i < N; i++) reference += OPAQUE(ia[i]);
  CHECK_EQ(sum32(ia, N), reference);
  digest = fnv1a_u64(digest, (uint64_t)sum32(ia, N));

  for (int i = 0; i < N; i++) fc[i] = fb[i];
  saxpy(fc, fa, 0.75f, N);
  /* Either side may be contracted into a fused multiply-add: they agree to within a rounding. */
  int same = 1;
  for (int i = 0; i < N; i++) {
    const float expected = OPAQUE(0.75f) * fa[i] + fb[i], difference = fc[i] - expected;
    same &= (difference < 0 ? -difference : difference) <= 1e-5f * (1 + (expected < 0 ? -expected : expected));
  }
  CHECK(same);
  digest = fnv1a(digest, fc, sizeof fc);

  saturating_add(bc, ba, bb, N);
  same = 1;
  for (int i = 0; i < N; i++) same &= bc[i] == (OPAQUE(ba[i]) + bb[i] > 255 ? 255 : ba[i] + bb[i]);
  CHECK(same);
  digest = fnv1a(digest, bc, sizeof bc);

  minmax(ic, ia, ib, N);
  same = 1;
  for (int i = 0; i < N; i++) {
    const int32_t a = OPAQUE(ia[i]), b = ib[i];
    same &= ic[i] == ((a < b ? a : b) ^ (a > b ? a : b) >> 3);
  }
  CHECK(same);
  digest = fnv1a(digest, ic, sizeof ic);

  int64_t dot = 0;
  for (int i = 0; i < N; i++) dot += OPAQUE(ha[i]) * hb[i];
  CHECK_EQ(dot16(ha, hb, N), dot);
  digest = fnv1a_u64(digest, (uint64_t)dot);

  widen_convert(da, ib, N);
  same = 1;
  for (int i = 0; i < N; i++) same &= da[i] == (double)OPAQUE(ib[i]) * 0.5;
  CHECK(same);
  narrow_convert(ic, fa, N);
  same = 1;
  for (int i = 0; i < N; i++) same &= ic[i] == (int32_t)OPAQUE(fa[i]);
  CHECK(same);
  digest = fnv1a(digest, ic, sizeof ic);

  conditional(ic, ia, N);
  same = 1;
  for (int i = 0; i < N; i++) {
    const int32_t a = OPAQUE(ia[i]);
    same &= ic[i] == (int32_t)(a & 1 ? (uint32_t)a * 3 : 0u - (uint32_t)a);
  }
  CHECK(same);
  digest = fnv1a(digest, ic, sizeof ic);

  const double reduced = reduce_double(da, db, N);
  printf("double dot product %.17g\n", reduced);
  digest = fnv1a(digest, &reduced, sizeof reduced);

  interleave(la, ia, ib, N);
  same = 1;
  for (int i = 0; i < N / 2; i++) same &= la[i] == (int64_t)OPAQUE(ia[2 * i]) * ib[2 * i + 1] - ia[2 * i + 1];
  CHECK(same);
  digest = fnv1a(digest, la, sizeof la);

  byte_shift(bc, ba, N);
  same = 1;
  for (int i = 0; i < N; i++) same &= bc[i] == (uint8_t)(OPAQUE(ba[i]) >> 3 | ba[i] << 5);
  CHECK(same);
  digest = fnv1a(digest, bc, sizeof bc);
  printf("loops fnv=%016" PRIx64 "\n", digest);
}

static void intrinsics(void) {
  const vector unsigned char bytes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const vector unsigned char reversed =
      vec_perm(bytes, bytes, (vector unsigned char){15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0});
  CHECK_EQ(reversed[0], 15);
  CHECK_EQ(reversed[15], 0);
  const vector signed int a = {1, -2, 3, -4}, b = {10, 20, -30, 40};
  const vector signed int sum = vec_add(a, b);
  CHECK(sum[0] == 11 && sum[1] == 18 && sum[2] == -27 && sum[3] == 36);
  const vector signed int splat = vec_splat(b, 2);
  CHECK(splat[0] == -30 && splat[3] == -30);
  const vector signed int merged = vec_mergeh(a, b);
  CHECK(merged[0] == 1 && merged[1] == 10 && merged[2] == -2 && merged[3] == 20);
  const vector bool int greater = vec_cmpgt(a, b);
  CHECK(greater[0] == 0 && greater[2] == 0xffffffffu);
  const vector signed int minus_hundred = vec_splats(-100), zero = vec_splats(0);
  CHECK(vec_all_gt(b, minus_hundred));
  CHECK(vec_any_lt(a, zero));
  CHECK(!vec_all_lt(a, zero));
  const vector unsigned char saturated =
      vec_adds((vector unsigned char){250, 5, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255},
               (vector unsigned char){10, 5, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  CHECK(saturated[0] == 255 && saturated[1] == 10 && saturated[2] == 255 && saturated[15] == 255);
  const vector signed short halves =
      vec_packs((vector signed int){70000, -70000, 5, -5}, (vector signed int){1, 2, 3, 4});
  CHECK(halves[0] == 32767 && halves[1] == -32768 && halves[2] == 5 && halves[7] == 4);
  const vector signed int msum =
      vec_msum((vector signed short){1, 2, 3, 4, 5, 6, 7, 8}, (vector signed short){1, 1, 2, 2, 3, 3, 4, 4},
               (vector signed int){100, 200, 300, 400});
  CHECK(msum[0] == 103 && msum[1] == 214 && msum[2] == 333 && msum[3] == 460);
  const vector unsigned int rotated =
      vec_rl((vector unsigned int){0x80000001u, 1, 2, 3}, (vector unsigned int){1, 31, 0, 4});
  CHECK(rotated[0] == 3 && rotated[1] == 0x80000000u && rotated[2] == 2 && rotated[3] == 48);
  const vector unsigned short shifted =
      vec_sl((vector unsigned short){1, 1, 1, 1, 0xffff, 2, 3, 4}, (vector unsigned short){0, 1, 15, 16, 4, 0, 0, 0});
  CHECK(shifted[1] == 2 && shifted[2] == 0x8000 && shifted[3] == 1 && shifted[4] == 0xfff0);
  const vector double dv = vec_madd((vector double){1.5, -2.0}, (vector double){2.0, 3.0}, (vector double){0.25, 1.0});
  CHECK(dv[0] == 3.25 && dv[1] == -5.0);
  const vector float fmax = vec_max((vector float){1, -2, 3, -4}, (vector float){0, 0, 5, -5});
  CHECK(fmax[0] == 1 && fmax[1] == 0 && fmax[2] == 5 && fmax[3] == -4);
  const vector unsigned char selected =
      vec_sel(bytes, reversed, (vector unsigned char){0xff, 0, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0});
  CHECK(selected[0] == 15 && selected[1] == 1 && selected[2] == (2 & 0xf0) + (13 & 0x0f) && selected[15] == 15);
  printf("intrinsics: %d %d %d %d\n", msum[0], msum[1], msum[2], msum[3]);
}

int main(void) {
  fill();
  loops();
  intrinsics();
  return finish();
}
