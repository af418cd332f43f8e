/* A tiny assertion helper for the helper's C unit tests. CHECK(cond), CHECK_EQ(a, b) (integers)
 * and CHECK_STR(a, b) report file:line, the test case and the values on failure and count it;
 * RUN(fn) runs one test case; main() returns check_done("name"), non-zero if anything failed. */
#ifndef QVMM_TESTS_CHECK_H
#define QVMM_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static unsigned check_count, check_failures;
static const char *check_case = "";

static inline void check_fail_at(const char *file, int line)
{
	check_failures++;
	fprintf(stderr, "%s:%d: in %s: ", file, line, check_case);
}

#define CHECK(cond)							\
	do {								\
		check_count++;						\
		if (!(cond)) {						\
			check_fail_at(__FILE__, __LINE__);		\
			fprintf(stderr, "CHECK(%s) failed\n", #cond);	\
		}							\
	} while (0)

#define CHECK_EQ(a, b)							\
	do {								\
		unsigned long long check_a_ = (unsigned long long)(a);	\
		unsigned long long check_b_ = (unsigned long long)(b);	\
		check_count++;						\
		if (check_a_ != check_b_) {				\
			check_fail_at(__FILE__, __LINE__);		\
			fprintf(stderr, "%s == %s failed: 0x%llx != 0x%llx\n", #a, #b, \
				check_a_, check_b_);			\
		}							\
	} while (0)

#define CHECK_STR(a, b)							\
	do {								\
		const char *check_a_ = (a), *check_b_ = (b);		\
		check_count++;						\
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_)) { \
			check_fail_at(__FILE__, __LINE__);		\
			fprintf(stderr, "%s == %s failed:\n  \"%s\"\n  \"%s\"\n", #a, #b, \
				check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)"); \
		}							\
	} while (0)

#define RUN(fn)								\
	do {								\
		check_case = #fn;					\
		fn();							\
	} while (0)

static inline int check_done(const char *name)
{
	printf("%s: %u checks, %u failed\n", name, check_count, check_failures);
	return check_failures ? 1 : 0;
}

#endif
