#include <stdio.h>
unsigned long part1(unsigned long), part2(unsigned long), part3(unsigned long),
	part4(unsigned long), part5(unsigned long);
int main(void) {
	unsigned long x = 1;
	x = part5(part4(part3(part2(part1(x)))));
	printf("build-helper distcc test: %lu\n", x);
	return 0;
}
