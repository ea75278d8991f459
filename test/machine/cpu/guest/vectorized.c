/* Loops gcc vectorizes with VMX and VSX at -O3: integer, single and double precision arithmetic,
   conversions, reductions, selects and permutes, printed as checksums. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#define N 1000

static float fa[N], fb[N], fc[N];
static double da[N], db[N], dc[N];
static int32_t ia[N], ib[N];
static int64_t la[N], lb[N];
static int16_t sa[N], sb[N];
static uint8_t ua[N], ub[N];
static uint32_t wa[N];

__attribute__((noinline)) static void kernels(void) {
  for (int i = 0; i < N; i++) fa[i] = fb[i] * fc[i] + fa[i];
  for (int i = 0; i < N; i++) da[i] = db[i] * dc[i] - da[i];
  for (int i = 0; i < N; i++) ia[i] += ib[i] * 3;
  for (int i = 0; i < N; i++) la[i] += lb[i] >> 3;
  for (int i = 0; i < N; i++) sa[i] = (int16_t)(sa[i] * sb[i]);
  for (int i = 0; i < N; i++) ua[i] = ua[i] > ub[i] ? ua[i] : ub[i];
  for (int i = 0; i < N; i++) dc[i] = ib[i];
  for (int i = 0; i < N; i++) ib[i] = (int32_t)(db[i] / 1000.0);
  for (int i = 0; i < N; i++) fc[i] = (float)dc[i];
  for (int i = 0; i < N; i++) la[i] += (int64_t)fb[i];
  for (int i = 0; i < N; i++) db[i] = fb[i];
  for (int i = 0; i < N; i++) wa[i] = ub[i] + (wa[i] >> 5) * 7;
  for (int i = 0; i < N; i++) ia[i] = ia[i] < 0 ? -ia[i] : ia[i] * 2;
  for (int i = 0; i < N; i++) da[i] = sqrt(fabs(da[i]));
  for (int i = 0; i < N; i++) fa[i] = fa[i] / (fb[i] + 1.5f);
  for (int i = 0; i < N; i++) fb[i] = floorf(fa[i]) + ceilf(fb[i]) + truncf(fc[i]) + roundf(fa[i]);
}

int main(void) {
  for (int i = 0; i < N; i++) {
    fa[i] = (float)i * 0.25f - 30.0f; fb[i] = (float)(i % 17) * 1.5f; fc[i] = 1.0f / (float)(i + 1);
    da[i] = i * 0.001 - 0.3; db[i] = (i % 23) * 1234.5; dc[i] = 1.0 / (i + 3);
    ia[i] = i * 7919 - 300000; ib[i] = i * 31 - 500;
    la[i] = (int64_t)i * 1000003 - 77; lb[i] = -(int64_t)i * 99991;
    sa[i] = (int16_t)(i * 37); sb[i] = (int16_t)(i - 500);
    ua[i] = (uint8_t)(i * 13); ub[i] = (uint8_t)(i * 7 + 3); wa[i] = (uint32_t)i * 2654435761u;
  }
  for (int round = 0; round < 3; round++) kernels();
  double fs = 0, ds = 0;
  int64_t is = 0, ls = 0, ss = 0, us = 0, ws = 0;
  for (int i = 0; i < N; i++) {
    fs += fa[i] + fb[i] + fc[i]; ds += da[i] + db[i] + dc[i];
    is += ia[i] + ib[i]; ls += la[i] + lb[i]; ss += sa[i] + sb[i]; us += ua[i] + ub[i]; ws += wa[i];
  }
  printf("%.9g %.17g %lld %lld %lld %lld %lld\n", fs, ds, (long long)is, (long long)ls, (long long)ss, (long long)us,
         (long long)ws);
  return 0;
}
