/* Calendar arithmetic on fixed instants, never the clock: gmtime_r and timegm round trips over
 * 1900..2400 including leap days, negative times and dates past 2038; strftime with every common
 * conversion but %s (the only one that depends on the local time zone; glibc still opens
 * /etc/localtime once, and nothing printed depends on what it finds); asctime_r; and the proleptic
 * Gregorian rules checked against a day count computed here. */
#define _GNU_SOURCE
#include "check.h"
#include <inttypes.h>
#include <time.h>

static int is_leap(int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

/* Days from 1970-01-01 to the first of January of `year`. */
static int64_t days_before_year(int64_t year) {
  int64_t days = 0;
  for (int64_t y = 1970; y < year; y++) days += 365 + is_leap(y);
  for (int64_t y = year; y < 1970; y++) days -= 365 + is_leap(y);
  return days;
}

static void round_trips(void) {
  static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  uint64_t digest = FNV_INIT;
  for (int64_t year = 1900; year <= 2400; year += 7) {
    const int64_t start = days_before_year(year);
    int64_t day_of_year = 0;
    for (int month = 0; month < 12; month++) {
      const int days = month_days[month] + (month == 1 && is_leap(year));
      for (int day = 1; day <= days; day += 9) {
        const time_t t = (time_t)((start + day_of_year + day - 1) * 86400 + 3661 * (month + 1));
        struct tm tm;
        CHECK(gmtime_r(&t, &tm) != NULL);
        CHECK_EQ(tm.tm_year + 1900, year);
        CHECK_EQ(tm.tm_mon, month);
        CHECK_EQ(tm.tm_mday, day);
        CHECK_EQ(tm.tm_yday, day_of_year + day - 1);
        CHECK_EQ(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec, 3661 * (month + 1));
        /* 1970-01-01 was a Thursday. */
        CHECK_EQ(tm.tm_wday, (int)((((start + day_of_year + day - 1) % 7) + 7 + 4) % 7));
        CHECK_EQ(timegm(&tm), t);
        digest = fnv1a_u64(digest, (uint64_t)t);
      }
      day_of_year += days;
    }
  }
  printf("round trips fnv=%016" PRIx64 "\n", digest);
}

static void formatting(void) {
  static const time_t instants[] = {0,
                                    -1,
                                    951782400 /* 2000-02-29 */,
                                    2147483647,
                                    2147483648LL,
                                    -2208988800LL,
                                    4102444799LL,
                                    1234567890,
                                    1700000000,
                                    253402300799LL /* 9999-12-31 */};
  for (size_t i = 0; i < sizeof instants / sizeof instants[0]; i++) {
    struct tm tm;
    CHECK(gmtime_r(&instants[i], &tm) != NULL);
    char text[256];
    const size_t n = strftime(
        text, sizeof text,
        "%Y-%m-%d %H:%M:%S | %a %A %b %B | %j %U %W %V %G %g | %u %w | %y %C %e %D %F %T %R %r %p %I | %z %Z %%", &tm);
    CHECK(n > 0);
    char classic[32];
    CHECK(asctime_r(&tm, classic) != NULL);
    printf("%lld: %s | %s", (long long)instants[i], text, classic);
  }
  struct tm tm;
  const time_t leap_day = 951782400;
  gmtime_r(&leap_day, &tm);
  char text[64];
  strftime(text, sizeof text, "%F %A", &tm);
  CHECK_STR(text, "2000-02-29 Tuesday");
  const time_t y2038 = 2147483648LL;
  gmtime_r(&y2038, &tm);
  strftime(text, sizeof text, "%F %T", &tm);
  CHECK_STR(text, "2038-01-19 03:14:08");
  const time_t before = -2208988800LL;
  gmtime_r(&before, &tm);
  strftime(text, sizeof text, "%F %a", &tm);
  CHECK_STR(text, "1900-01-01 Mon");
  CHECK_EQ(strftime(text, 5, "%Y-%m-%d", &tm), 0); /* does not fit */
  CHECK(difftime(1000, 250) == 750.0);
}

static void normalisation(void) {
  /* timegm normalises fields that are out of range. */
  struct tm tm = {.tm_year = 2023 - 1900, .tm_mon = 12, .tm_mday = 32, .tm_hour = 25, .tm_min = 61, .tm_sec = 61};
  const time_t t = timegm(&tm);
  char text[64];
  strftime(text, sizeof text, "%F %T", &tm);
  printf("normalised: %s (%lld)\n", text, (long long)t);
  CHECK_STR(text, "2024-02-02 02:02:01");
  struct tm before_epoch = {
      .tm_year = 1969 - 1900, .tm_mon = 11, .tm_mday = 31, .tm_hour = 23, .tm_min = 59, .tm_sec = 59};
  CHECK_EQ(timegm(&before_epoch), (uint64_t)-1LL);
}

int main(void) {
  round_trips();
  formatting();
  normalisation();
  return finish();
}
