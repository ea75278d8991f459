// guest-levels: O0 O2 O3-power9
/* Indirect control flow: tables of function pointers (mtctr/bctrl and the TOC pointer restored after
 * each call), callbacks with context, functions returning function pointers, a bytecode interpreter
 * dispatching through a dense switch (a jump table) and through computed goto (&&label), indirect
 * tail calls, and a function pointer taken in a structure passed by value. */
#include "check.h"
#include <inttypes.h>

typedef int64_t (*binary_op)(int64_t, int64_t);

static int64_t op_add(int64_t a, int64_t b) { return a + b; }
static int64_t op_sub(int64_t a, int64_t b) { return a - b; }
static int64_t op_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static int64_t op_div(int64_t a, int64_t b) { return b ? a / b : 0; }
static int64_t op_and(int64_t a, int64_t b) { return a & b; }
static int64_t op_xor(int64_t a, int64_t b) { return a ^ b; }
static int64_t op_shl(int64_t a, int64_t b) { return (int64_t)((uint64_t)a << (b & 63)); }
static int64_t op_max(int64_t a, int64_t b) { return a > b ? a : b; }

static const binary_op operations[] = {op_add, op_sub, op_mul, op_div, op_and, op_xor, op_shl, op_max};
static const char *const operation_names[] = {"add", "sub", "mul", "div", "and", "xor", "shl", "max"};

static void table_dispatch(void) {
  uint64_t digest = FNV_INIT;
  rng_seed(3);
  for (int n = 0; n < 4000; n++) {
    const size_t which = rng_below(8);
    const int64_t a = (int64_t)rng_next() >> rng_below(60), b = (int64_t)rng_next() >> rng_below(60);
    const binary_op op = OPAQUE(operations[which]);
    digest = fnv1a_u64(digest, (uint64_t)op(a, b));
  }
  printf("table dispatch fnv=%016" PRIx64 "\n", digest);
  for (size_t i = 0; i < 8; i++) printf("%s(12, 5) = %" PRId64 "\n", operation_names[i], operations[i](12, 5));
  CHECK_EQ(operations[2](OPAQUE(-7), 6), (uint64_t)-42LL);
}

/* A callback with a context pointer, the C way of a closure. */
struct counter {
  int calls;
  int64_t total;
};

static void count_and_add(void *context, int64_t value) {
  struct counter *counter = context;
  counter->calls++;
  counter->total += value;
}

static void for_each_square(int64_t limit, void (*callback)(void *, int64_t), void *context) {
  for (int64_t i = 1; i <= limit; i++) callback(context, i * i);
}

static binary_op choose(char symbol) {
  switch (symbol) {
    case '+': return op_add;
    case '-': return op_sub;
    case '*': return op_mul;
    case '/': return op_div;
    default: return NULL;
  }
}

/* A tiny stack machine, run twice: through a switch and through computed goto. */
enum { PUSH, ADD, MUL, SUB, DUP, SWAP, JNZ, DEC, DROP, HALT, OVER, NOP0, NOP1, NOP2, NOP3, NOP4 };

static const int64_t program[] = {PUSH, 1,    PUSH, 10,                         /* accumulator, counter */
                                  SWAP, PUSH, 3,    MUL,  PUSH, 1,   ADD, SWAP, /* acc = acc * 3 + 1 */
                                  NOP0, NOP1, NOP2, NOP3, NOP4, DEC, DUP, JNZ,  4, DROP, HALT};

static int64_t run_switch(const int64_t *code) {
  int64_t stack[16];
  int sp = 0;
  for (size_t pc = 0;;) {
    switch (code[pc++]) {
      case PUSH: stack[sp++] = code[pc++]; break;
      case ADD:
        sp--;
        stack[sp - 1] += stack[sp];
        break;
      case MUL:
        sp--;
        stack[sp - 1] *= stack[sp];
        break;
      case SUB:
        sp--;
        stack[sp - 1] -= stack[sp];
        break;
      case DUP:
        stack[sp] = stack[sp - 1];
        sp++;
        break;
      case SWAP: {
        const int64_t t = stack[sp - 1];
        stack[sp - 1] = stack[sp - 2];
        stack[sp - 2] = t;
        break;
      }
      case JNZ: {
        const int64_t target = code[pc++];
        if (stack[--sp]) pc = (size_t)target;
        break;
      }
      case DEC: stack[sp - 1]--; break;
      case DROP: sp--; break;
      case OVER:
        stack[sp] = stack[sp - 2];
        sp++;
        break;
      case NOP0:
      case NOP1:
      case NOP2:
      case NOP3:
      case NOP4: break;
      case HALT: return stack[sp - 1];
      default: return -1;
    }
  }
}

static int64_t run_threaded(const int64_t *code) {
  static void *const labels[] = {&&push, &&add,  &&mul,  &&sub, &&dup, &&swap, &&jnz, &&dec,
                                 &&drop, &&halt, &&over, &&nop, &&nop, &&nop,  &&nop, &&nop};
  int64_t stack[16];
  int sp = 0;
  size_t pc = 0;
#define NEXT goto *labels[code[pc++]]
  NEXT;
push:
  stack[sp++] = code[pc++];
  NEXT;
add:
  sp--;
  stack[sp - 1] += stack[sp];
  NEXT;
mul:
  sp--;
  stack[sp - 1] *= stack[sp];
  NEXT;
sub:
  sp--;
  stack[sp - 1] -= stack[sp];
  NEXT;
dup:
  stack[sp] = stack[sp - 1];
  sp++;
  NEXT;
swap : {
  const int64_t t = stack[sp - 1];
  stack[sp - 1] = stack[sp - 2];
  stack[sp - 2] = t;
  NEXT;
}
jnz : {
  const int64_t target = code[pc++];
  if (stack[--sp]) pc = (size_t)target;
  NEXT;
}
dec:
  stack[sp - 1]--;
  NEXT;
drop:
  sp--;
  NEXT;
over:
  stack[sp] = stack[sp - 2];
  sp++;
  NEXT;
nop:
  NEXT;
halt:
  return stack[sp - 1];
#undef NEXT
}

/* Indirect tail calls: a chain of states, each returning the next through a pointer. */
struct state;
typedef const struct state *(*transition)(int *);
struct state {
  transition next;
};
static const struct state state_a, state_b, state_done;
static const struct state *go_a(int *n) { return --*n > 0 ? &state_b : &state_done; }
static const struct state *go_b(int *n) { return (*n *= 1) > 0 ? &state_a : &state_done; }
static const struct state state_a = {go_a}, state_b = {go_b}, state_done = {NULL};

struct with_callback {
  int64_t (*apply)(int64_t, int64_t);
  int64_t argument;
  char padding[40];
};

static int64_t apply_by_value(struct with_callback w, int64_t x) { return w.apply(x, w.argument); }

int main(void) {
  table_dispatch();
  struct counter counter = {0, 0};
  for_each_square(OPAQUE(100), count_and_add, &counter);
  CHECK_EQ(counter.calls, 100);
  CHECK_EQ(counter.total, 338350);
  CHECK_EQ(choose(OPAQUE('*'))(6, 7), 42);
  CHECK_EQ(choose(OPAQUE('/'))(-42, 5), (uint64_t)-8LL);
  CHECK(choose(OPAQUE('?')) == NULL);
  const int64_t via_switch = run_switch(program), via_goto = run_threaded(program);
  printf("stack machine: switch %" PRId64 ", computed goto %" PRId64 "\n", via_switch, via_goto);
  CHECK_EQ(via_switch, 88573); /* ten rounds of acc = acc * 3 + 1 from 1 */
  CHECK_EQ(via_goto, via_switch);
  int steps = OPAQUE(1000), transitions = 0;
  for (const struct state *s = &state_a; s->next; s = s->next(&steps)) transitions++;
  CHECK_EQ(transitions, 1999);
  struct with_callback w = {op_max, 17, {0}};
  CHECK_EQ(apply_by_value(w, OPAQUE(5)), 17);
  w.apply = op_shl;
  CHECK_EQ(apply_by_value(w, OPAQUE(1)), 1 << 17);
  return finish();
}
