/* Some work for the compiler: a table it computes at compile time. */
#define N 64
static unsigned long table[N];
static unsigned long mix(unsigned long v, unsigned long k) {
	for (int r = 0; r < 8; r++) v = (v ^ (k + 2 * r)) * 0x9e3779b97f4a7c15UL + (v >> 7);
	return v;
}
unsigned long part2(unsigned long x) {
	for (int i = 0; i < N; i++) table[i] = mix(x + i, 2);
	for (int i = 1; i < N; i++) table[i] ^= table[i - 1] >> 3;
	return table[N - 1] % 1000003UL;
}
