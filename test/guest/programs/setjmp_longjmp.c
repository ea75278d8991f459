// guest-levels: O0 O2 O3-power9
/* Non-local jumps: longjmp out of deeply nested frames (each with callee-saved registers in use),
 * volatile locals surviving the jump, longjmp(buf, 0) arriving as 1, jumping back into the same buffer
 * in a loop, nested buffers unwinding in layers, sigsetjmp/siglongjmp restoring the signal mask, and
 * values in callee-saved registers (general, floating-point; vector ones clobbered too) intact after the jump. */
#include "check.h"
#include <setjmp.h>
#include <signal.h>

static jmp_buf outer_buffer, inner_buffer;
static int frames_entered;

/* Uses many values live across the calls, so that the compiler keeps them in callee-saved registers. */
static long dive(int depth, jmp_buf target, int value, long accumulator) {
  frames_entered++;
  const long a = accumulator * 3 + depth, b = accumulator ^ (long)depth << 7, c = a + b;
  const double f = (double)depth * 1.5;
  if (depth == 0) {
    if (value != 0) longjmp(target, value);
    return accumulator; /* a way out without the jump, which keeps the recursion finite for gcc */
  }
  const long below = dive(depth - 1, target, value, c);
  return below + a + b + c + (long)f;
}

static void deep_jumps(void) {
  static const int depths[] = {0, 1, 2, 10, 100, 1000, 5000};
  for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
    volatile long survivor = 1000 + (long)i;
    volatile double real_survivor = 0.5 + (double)i;
    frames_entered = 0;
    const int result = setjmp(outer_buffer);
    if (result == 0) {
      survivor = 2000 + (long)i; /* changed after setjmp: volatile keeps the new value */
      real_survivor = 1.25;
      dive(depths[i], outer_buffer, (int)i + 7, 1);
      CHECK(!"dive returned");
    } else {
      printf("depth %d: longjmp value %d after %d frames, survivor %ld %g\n", depths[i], result, frames_entered,
             survivor, real_survivor);
      CHECK_EQ(result, (int)i + 7);
      CHECK_EQ(frames_entered, depths[i] + 1);
      CHECK_EQ(survivor, 2000 + (long)i);
      CHECK(real_survivor == 1.25);
    }
  }
}

static void zero_becomes_one(void) {
  const int result = setjmp(outer_buffer);
  if (result == 0) longjmp(outer_buffer, 0);
  CHECK_EQ(result, 1);
}

/* The same buffer re-entered many times: a loop made of longjmp. */
static void jump_loop(void) {
  volatile int iterations = 0;
  volatile long sum = 0;
  const int value = setjmp(outer_buffer);
  sum += value;
  if (iterations++ < 100) longjmp(outer_buffer, iterations);
  printf("loop: %d iterations, sum %ld\n", iterations, sum);
  CHECK_EQ(iterations, 101);
  CHECK_EQ(sum, 5050);
}

static void inner_layer(volatile int *trace) {
  if (setjmp(inner_buffer) == 0) {
    *trace = *trace * 10 + 1;
    dive(50, inner_buffer, 3, 0);
  }
  *trace = *trace * 10 + 2;
  longjmp(outer_buffer, 9);
}

static void nested(void) {
  volatile int trace = 0;
  const int result = setjmp(outer_buffer);
  if (result == 0) {
    inner_layer(&trace);
  } else {
    trace = trace * 10 + 3;
  }
  printf("nested: trace %d result %d\n", trace, result);
  CHECK_EQ(trace, 123);
  CHECK_EQ(result, 9);
}

static int blocked(int signal) {
  sigset_t mask;
  sigprocmask(SIG_BLOCK, NULL, &mask);
  return sigismember(&mask, signal);
}

static void signal_masks(void) {
  static sigjmp_buf saving, not_saving;
  sigset_t block_usr1;
  sigemptyset(&block_usr1);
  sigaddset(&block_usr1, SIGUSR1);
  CHECK(!blocked(SIGUSR1));
  if (sigsetjmp(saving, 1) == 0) {
    sigprocmask(SIG_BLOCK, &block_usr1, NULL);
    CHECK(blocked(SIGUSR1));
    siglongjmp(saving, 1);
  }
  CHECK(!blocked(SIGUSR1)); /* the mask saved at sigsetjmp is back */
  if (sigsetjmp(not_saving, 0) == 0) {
    sigprocmask(SIG_BLOCK, &block_usr1, NULL);
    siglongjmp(not_saving, 1);
  }
  CHECK(blocked(SIGUSR1)); /* not saved, so not restored */
  sigprocmask(SIG_UNBLOCK, &block_usr1, NULL);
  CHECK(!blocked(SIGUSR1));
}

/* f14-f31 and v20-v31 are callee-saved: values held there across setjmp must survive longjmp. */
static __attribute__((noinline)) void clobber_and_jump(jmp_buf target) {
  volatile double spill[20];
  for (int i = 0; i < 20; i++) spill[i] = i * 1.5;
  __asm__ volatile("" ::
                       : "fr14", "fr15", "fr16", "fr17", "fr18", "fr19", "fr20", "fr21", "fr22", "fr23", "fr24", "fr25",
                         "fr26", "fr27", "fr28", "fr29", "fr30", "fr31", "v20", "v21", "v22", "v23", "v24", "v25",
                         "v26", "v27", "v28", "v29", "v30", "v31", "r14", "r15", "r16", "r17", "r18", "r19", "r20",
                         "r21", "r22", "r23", "r24", "r25", "r26", "r27", "r28", "r29");
  longjmp(target, spill[3] > 0 ? 2 : 3);
}

static void callee_saved(void) {
  double a = OPAQUE(1.25), b = OPAQUE(-2.5), c = OPAQUE(1e10);
  long x = OPAQUE(123456789L), y = OPAQUE(-987654321L);
  const int result = setjmp(outer_buffer);
  if (result == 0) clobber_and_jump(outer_buffer);
  /* Unmodified since setjmp: their values are defined after the jump even without volatile. */
  CHECK_EQ(result, 2);
  CHECK(a == 1.25 && b == -2.5 && c == 1e10);
  CHECK(x == 123456789L && y == -987654321L);
}

int main(void) {
  deep_jumps();
  zero_becomes_one();
  jump_loop();
  nested();
  signal_masks();
  callee_saved();
  return finish();
}
