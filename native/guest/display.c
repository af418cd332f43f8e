/* The demo guest's desktop: background, windows with title bars, text in a built-in 8x8 font,
 * a photo-like gradient, a terminal that shows typed keys, a taskbar clock and a mouse cursor
 * with save-under. Pixels are u32 0x00RRGGBB (BGRX bytes). Every shape is clipped to the screen
 * (64x64 up to 4096x2160). */
#include "display.h"

#include "font8x8.h"
#include "guest-abi.h"

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* The compiler may turn loops into calls to these. */
void *memset(void *d, int c, unsigned long n)
{
	void *r = d;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return r;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	void *r = d;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return r;
}

/* Emulated string instructions cost per iteration, not per byte: move two pixels per
 * iteration (rep stosq / rep movsq), with an odd pixel at either end done alone. */
static inline void fill32(uint32_t *d, uint32_t v, uint64_t n)
{
	uint64_t q;

	if (((uint64_t)d & 4) && n) {
		*d++ = v;
		n--;
	}
	q = n >> 1;
	if (q)
		__asm__ volatile("rep stosq" : "+D"(d), "+c"(q) : "a"((uint64_t)v << 32 | v) : "memory");
	if (n & 1)
		*d = v;
}

static inline void copy32(uint32_t *d, const uint32_t *s, uint64_t n)
{
	uint64_t q = n >> 1;

	if (q)
		__asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(q) : : "memory");
	if (n & 1)
		*d = *s;
}

#define RGB(r, g, b) (((uint32_t)(r) << 16) | ((uint32_t)(g) << 8) | (uint32_t)(b))

static uint32_t *fb;
static int W, H, P;		/* width, height, pixels per row */

struct rect { int x, y, w, h; };

/* Clips r to the screen; 0 if nothing is left. */
static int clip(struct rect *r)
{
	int x1 = r->x + r->w, y1 = r->y + r->h;

	if (r->x < 0) r->x = 0;
	if (r->y < 0) r->y = 0;
	if (x1 > W) x1 = W;
	if (y1 > H) y1 = H;
	r->w = x1 - r->x;
	r->h = y1 - r->y;
	return r->w > 0 && r->h > 0;
}

static int overlap(struct rect a, struct rect b)
{
	return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/* ---- the cursor (12x18 arrow, hot spot at its tip) with the pixels it covers saved ---- */

#define CUR_W 12
#define CUR_H 18
static const char *const cursor_art[CUR_H] = {
	"X           ", "XX          ", "X.X         ", "X..X        ", "X...X       ",
	"X....X      ", "X.....X     ", "X......X    ", "X.......X   ", "X........X  ",
	"X.........X ", "X......XXXXX", "X...X..X    ", "X..XX..X    ", "X.X  X..X   ",
	"XX   X..X   ", "X     X..X  ", "       XX   ",
};
static uint32_t saved[CUR_W * CUR_H];
static int cur_x, cur_y, cur_visible;
static uint32_t cur_buttons;

static struct rect cursor_rect(void)
{
	struct rect r = { cur_x, cur_y, CUR_W, CUR_H };
	return r;
}

static void cursor_show(void)
{
	struct rect r = cursor_rect();
	uint32_t fill = cur_buttons & 1 ? RGB(255, 220, 0) : cur_buttons & 2 ? RGB(255, 64, 64)
		      : cur_buttons & 4 ? RGB(64, 255, 64) : RGB(255, 255, 255);

	if (cur_visible || !clip(&r))
		return;
	for (int y = 0; y < r.h; y++) {
		uint32_t *row = fb + (uint64_t)(r.y + y) * P + r.x;
		const char *art = cursor_art[r.y + y - cur_y] + (r.x - cur_x);
		copy32(saved + y * CUR_W, row, (uint64_t)r.w);
		for (int x = 0; x < r.w; x++) {
			if (art[x] == 'X')
				row[x] = RGB(0, 0, 0);
			else if (art[x] == '.')
				row[x] = fill;
		}
	}
	cur_visible = 1;
}

static void cursor_hide(void)
{
	struct rect r = cursor_rect();

	if (!cur_visible)
		return;
	cur_visible = 0;
	if (!clip(&r))
		return;
	for (int y = 0; y < r.h; y++)
		copy32(fb + (uint64_t)(r.y + y) * P + r.x, saved + y * CUR_W, (uint64_t)r.w);
}

/* Drawing into r: take the cursor off first if it is in the way; returns whether it was. */
static int begin(struct rect r)
{
	if (cur_visible && overlap(r, cursor_rect())) {
		cursor_hide();
		return 1;
	}
	return 0;
}

static void end(int hidden)
{
	if (hidden)
		cursor_show();
}

/* ---- primitives (callers handle the cursor) ---- */

static void fill_rect(int x, int y, int w, int h, uint32_t color)
{
	struct rect r = { x, y, w, h };

	if (!clip(&r))
		return;
	for (int i = 0; i < r.h; i++)
		fill32(fb + (uint64_t)(r.y + i) * P + r.x, color, (uint64_t)r.w);
}

static void glyph(int x, int y, char c, uint32_t color)
{
	const unsigned char *g;

	if (c < 0x20 || c > 0x7e)
		c = '?';
	if (x < 0 || y < 0 || x + 8 > W || y + 8 > H)
		return;			/* only whole glyphs */
	g = font8x8[c - 0x20];
	for (int i = 0; i < 8; i++) {
		uint32_t *row = fb + (uint64_t)(y + i) * P + x;
		for (unsigned bits = g[i]; bits;) {	/* one step per lit pixel */
			int b = 31 - __builtin_clz(bits);
			row[7 - b] = color;
			bits &= ~(1u << b);
		}
	}
}

/* Text clipped to max_x; returns the x after it. */
static int text(int x, int y, const char *s, uint32_t color, int max_x)
{
	for (; *s && x + 8 <= max_x; s++, x += 8)
		glyph(x, y, *s, color);
	return x;
}

static char *utoa(char *p, uint64_t v, int min_digits)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v || n < min_digits);
	while (n)
		*p++ = buf[--n];
	*p = 0;
	return p;
}

/* ---- the scene ---- */

#define TITLE_H 14
#define TASKBAR_H 20

struct window {
	struct rect r;		/* outer frame */
	struct rect body;	/* inside, below the title bar */
};

static struct window notes, photo, term;

static void window(struct window *win, int x, int y, int w, int h, const char *title,
		   uint32_t title_color, uint32_t body_color)
{
	win->r = (struct rect){ x, y, w, h };
	win->body = (struct rect){ x + 2, y + TITLE_H + 2, w - 4, h - TITLE_H - 4 };
	/* Every pixel once: shadow strips, frame strips, title bar, body. */
	fill_rect(x + w, y + 4, 4, h, RGB(16, 24, 40));
	fill_rect(x + 4, y + h, w, 4, RGB(16, 24, 40));
	fill_rect(x, y, w, 2, RGB(200, 200, 208));
	fill_rect(x, y + TITLE_H + 1, w, 1, RGB(200, 200, 208));
	fill_rect(x, y + h - 2, w, 2, RGB(200, 200, 208));
	fill_rect(x, y + 2, 2, h - 4, RGB(200, 200, 208));
	fill_rect(x + w - 2, y + 2, 2, h - 4, RGB(200, 200, 208));
	fill_rect(x + 2, y + 2, w - 4, TITLE_H - 1, title_color);
	text(x + 6, y + 5, title, RGB(255, 255, 255), x + w - 40);
	for (int i = 0; i < 3; i++)						/* buttons */
		fill_rect(x + w - 14 - i * 12, y + 4, 9, 8, i ? RGB(220, 220, 220) : RGB(230, 80, 60));
	fill_rect(win->body.x, win->body.y, win->body.w, win->body.h, body_color);
}

static void background(void)
{
	for (int y = 0; y < H; y++) {
		uint32_t t = (uint32_t)y * 255 / (uint32_t)H;
		fill32(fb + (uint64_t)y * P, RGB(24 + t / 8, 72 + t / 5, 120 + t / 3), (uint64_t)W);
	}
}

static const char *const lorem[] = {
	"qumra demo guest - a freestanding long-mode program",
	"The quick brown fox jumps over the lazy dog.",
	"PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS! 0123456789",
	"int main(void) { return printf(\"%d\\n\", 6 * 7); }",
	"Framebuffer: BGRX at 0xD0000000, dirty pages by KVM.",
	"{[(<~`^|\\/?@#$%&*+-=_:;'\",.>)]}",
};

static void notes_text(void)
{
	struct rect b = notes.body;
	int lines = (b.h - 8) / 11, x1 = b.x + b.w - 4;

	if (lines > 16)
		lines = 16;
	for (int i = 0; i < lines; i++)
		text(b.x + 6, b.y + 6 + i * 11, lorem[i % 6], i % 6 == 0 ? RGB(20, 60, 160) : RGB(30, 30, 30),
		     x1 < b.x + 6 + 64 * 8 ? x1 : b.x + 6 + 64 * 8);
}

/* A smooth photo-like picture: sky gradient, a sun with a glow, a hill, a little grain.
 * Incremental arithmetic only (a dozen instructions a pixel): guest code may be emulated. */
#define PHOTO_MAX_W 192
#define PHOTO_MAX_H 128
static int16_t hill_top[PHOTO_MAX_W];

static void photo_picture(void)
{
	struct rect r = photo.body;
	uint32_t seed = 12345;
	int cx, cy, rad2, glow2;

	if (r.w > PHOTO_MAX_W) r.w = PHOTO_MAX_W;
	if (r.h > PHOTO_MAX_H) r.h = PHOTO_MAX_H;
	if (!clip(&r) || r.w < 8 || r.h < 8)
		return;
	cx = r.w * 2 / 3;
	cy = r.h / 3;
	rad2 = (r.h / 8 + 1) * (r.h / 8 + 1);
	glow2 = rad2 * 5;
	for (int x = 0; x < r.w; x++) {
		int dx = x - r.w / 3;
		hill_top[x] = (int16_t)(r.h * 3 / 5 - r.h / 8 + dx * dx / (r.w * 2 + 1));
	}
	for (int y = 0; y < r.h; y++) {
		uint32_t *row = fb + (uint64_t)(r.y + y) * P + r.x;
		int t = y * 128 / r.h;				/* 0..127 down the picture */
		uint32_t sky = RGB(80 + t, 120 + t / 2, 235 - t / 4);
		uint32_t grass = RGB(30 + t / 4, 110 - t / 3, 30);
		uint32_t green = 0, green_step = (60u << 16) / (uint32_t)r.w;
		int d2 = (0 - cx) * (0 - cx) + (y - cy) * (y - cy), dd = 1 - 2 * cx;
		for (int x = 0; x < r.w; x++) {
			uint32_t c;
			seed = seed * 1103515245u + 12345u;
			if (y >= hill_top[x]) {
				c = grass + ((green >> 16) << 8);
			} else if (d2 >= glow2) {
				c = sky;
			} else if (d2 >= rad2) {
				uint32_t g = (uint32_t)(glow2 - d2) * 15u / (uint32_t)rad2;	/* 0..60 */
				c = sky + g * 0x010100u - (g / 4) * 0x000001u;
			} else {
				c = RGB(244, 236, 190);	/* + grain stays below 256 */
			}
			row[x] = c + (seed >> 29) * 0x010101u;
			green += green_step;
			d2 += dd;
			dd += 2;
		}
	}
}

/* ---- the terminal ---- */

static int term_cols, term_rows, term_col, term_row;
#define TERM_BG RGB(12, 12, 16)
#define TERM_FG RGB(80, 240, 120)

static void term_reset(void)
{
	term_cols = (term.body.w - 8) / 8;
	term_rows = (term.body.h - 8) / 10;
	if (term_cols < 0) term_cols = 0;
	if (term_rows < 0) term_rows = 0;
	term_col = term_row = 0;
}

static void term_cell(int col, int row, char c)
{
	int x = term.body.x + 4 + col * 8, y = term.body.y + 4 + row * 10;

	fill_rect(x, y, 8, 10, TERM_BG);
	if (c != ' ')
		glyph(x, y + 1, c, TERM_FG);
}

static void term_scroll(void)
{
	struct rect b = term.body;
	int top = b.y + 4, lines = term_rows * 10;
	struct rect vis = { b.x, b.y, b.w, b.h };

	if (!clip(&vis))
		return;
	for (int y = top; y < top + lines - 10 && y + 10 < H; y++)
		copy32(fb + (uint64_t)y * P + vis.x, fb + (uint64_t)(y + 10) * P + vis.x, (uint64_t)vis.w);
	fill_rect(vis.x, top + lines - 10, vis.w, 10, TERM_BG);
}

static void term_newline(void)
{
	term_col = 0;
	if (++term_row >= term_rows) {
		term_row = term_rows - 1;
		term_scroll();
	}
}

static void term_put(char c)
{
	if (!term_cols || !term_rows)
		return;
	if (c == '\n') {
		term_cell(term_col, term_row, ' ');	/* take the caret away */
		term_newline();
	} else if (c == '\b') {
		term_cell(term_col, term_row, ' ');
		if (term_col > 0)
			term_col--;
		term_cell(term_col, term_row, ' ');
	} else {
		term_cell(term_col, term_row, c);
		if (++term_col >= term_cols)
			term_newline();
	}
	term_cell(term_col, term_row, '_');		/* the caret */
}

static void term_puts(const char *s)
{
	while (*s)
		term_put(*s++);
}

/* ---- the taskbar ---- */

static struct rect clock_rect(void)
{
	struct rect r = { W - 8 * 15 - 6, H - TASKBAR_H + 6, 8 * 15, 8 };
	return r;
}

static uint64_t clock_seconds;

static void clock_draw(void)
{
	struct rect r = clock_rect();
	char s[32], *p = s;

	p = utoa(p, clock_seconds / 3600, 1);
	*p++ = ':';
	p = utoa(p, clock_seconds / 60 % 60, 2);
	*p++ = ':';
	p = utoa(p, clock_seconds % 60, 2);
	fill_rect(r.x, r.y, r.w, r.h, RGB(40, 44, 52));
	text(r.x + r.w - (int)(p - s) * 8, r.y, s, RGB(230, 230, 230), W);
}

static void taskbar(void)
{
	fill_rect(0, H - TASKBAR_H, W, TASKBAR_H, RGB(40, 44, 52));
	fill_rect(0, H - TASKBAR_H, W, 1, RGB(90, 96, 110));
	fill_rect(4, H - TASKBAR_H + 3, 56, TASKBAR_H - 6, RGB(60, 120, 200));
	text(8, H - TASKBAR_H + 6, "qumra", RGB(255, 255, 255), 60);
	clock_draw();
}

void display_scene(void)
{
	cursor_hide();
	background();
	window(&notes, W / 16, H / 14, W * 9 / 20, H * 9 / 20, "notes.txt", RGB(40, 90, 180),
	       RGB(250, 250, 245));
	notes_text();
	window(&photo, W * 9 / 16, H / 10, W * 2 / 5 < PHOTO_MAX_W + 4 ? W * 2 / 5 : PHOTO_MAX_W + 4,
	       H * 9 / 20 < PHOTO_MAX_H + TITLE_H + 4 ? H * 9 / 20 : PHOTO_MAX_H + TITLE_H + 4,
	       "photo.jpg", RGB(120, 60, 150), RGB(0, 0, 0));
	photo_picture();
	window(&term, W / 5, H * 3 / 5, W * 3 / 5, H * 3 / 10, "terminal", RGB(60, 60, 70), TERM_BG);
	term_reset();
	term_puts("qumra demo terminal: type here\n$ ");
	taskbar();
	cursor_show();
}

int display_init(void)
{
	uint32_t w = inl(QG_FB_WIDTH), h = inl(QG_FB_HEIGHT), stride = inl(QG_FB_STRIDE);

	if (w < 64 || w > 4096 || h < 64 || h > 2160 || stride < w * 4 || (stride & 3))
		return 0;
	W = (int)w;
	H = (int)h;
	P = (int)(stride / 4);
	fb = (uint32_t *)(uint64_t)inl(QG_FB_ADDR);
	(void)inl(QG_PTR_SEQ);			/* arms the doorbell */
	cur_x = (int)inl(QG_PTR_X);
	cur_y = (int)inl(QG_PTR_Y);
	cur_buttons = inl(QG_PTR_BUTTONS);
	display_scene();
	return 1;
}

/* ---- commands ---- */

static uint32_t draw_count, full_count;

uint32_t display_draw(void)
{
	uint32_t n = ++draw_count;
	struct rect r = { W >= 264 ? 64 : 0, H >= 164 ? 64 : 0, 200, 100 };
	int hidden;

	if (!fb || !clip(&r))
		return n;
	hidden = begin(r);
	for (int y = 0; y < r.h; y++) {
		uint32_t c = (n * 0x9e3779b1u) ^ ((uint32_t)y * 0x00030507u);
		uint32_t *row = fb + (uint64_t)(r.y + y) * P + r.x;
		fill32(row, c & 0xffffff, (uint64_t)r.w);
		if ((y & 7) == 0)		/* a stripe every 8 rows */
			fill32(row, ~c & 0xffffff, (uint64_t)(r.w / 2));
	}
	fb[(uint64_t)r.y * P + r.x] = n;
	end(hidden);
	return n;
}

/* One row of a smooth colour cycle, twice as wide as the screen: it depends on W alone, so it is
 * built once (at the first FULL) rather than per FULL, where its divisions cost ~20 emulated
 * instructions a pixel (~4000 pixels at 1920 wide: tens of ms under emulation). */
static uint32_t gradient_row[8192];
static int gradient_w;

static void gradient_build(void)
{
	for (int x = 0; x < 2 * W; x++) {
		uint32_t t = (uint32_t)x * 768 / (uint32_t)W, p = t % 256;
		uint32_t up = p, down = 255 - p;
		gradient_row[x] = t < 256 ? RGB(down, up, 128) : t < 512 ? RGB(64, down, up)
				: t < 768 ? RGB(up, 64, down) : RGB(down, up, 128);
	}
	gradient_w = W;
}

uint32_t display_full(void)
{
	uint32_t n = ++full_count;

	if (!fb)
		return n;
	if (gradient_w != W)
		gradient_build();
	cursor_hide();
	/* Every screen row is a window into gradient_row, shifted by its y and by n: a diagonal
	 * gradient moving with n. One rep movsq per row, straight from RAM: the rows are written,
	 * never read back. */
	for (int y = 0; y < H; y++) {
		uint32_t off = ((uint32_t)y + n * 16) % (uint32_t)W;
		copy32(fb + (uint64_t)y * P, gradient_row + off, (uint64_t)W);
	}
	cursor_show();
	return n;
}

/* Puts the cursor at x, y with these buttons; 0 if nothing changed. Without a framebuffer the
 * state is kept all the same (the drawing clips to nothing). */
static int cursor_to(int x, int y, uint32_t buttons)
{
	if (x == cur_x && y == cur_y && buttons == cur_buttons)
		return 0;
	cursor_hide();
	cur_x = x;
	cur_y = y;
	cur_buttons = buttons;
	cursor_show();
	return 1;
}

int display_pointer(struct display_pointer *p)
{
	int x, y;
	uint32_t buttons;

	(void)inl(QG_PTR_SEQ);			/* first: re-arms the doorbell */
	x = (int)inl(QG_PTR_X);
	y = (int)inl(QG_PTR_Y);
	buttons = inl(QG_PTR_BUTTONS);
	if (!cursor_to(x, y, buttons))
		return 0;
	*p = (struct display_pointer){ cur_x, cur_y, cur_buttons };
	return 1;
}

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void display_move(int dx, int dy, uint32_t buttons)
{
	int x = cur_x + dx, y = cur_y + dy;

	/* the tip stays on the screen (without one, within bounds that cannot overflow) */
	x = clamp(x, 0, W > 0 ? W - 1 : 65535);
	y = clamp(y, 0, H > 0 ? H - 1 : 65535);
	cursor_to(x, y, buttons);
}

void display_clock(uint64_t seconds)
{
	int hidden;

	clock_seconds = seconds;
	if (!fb)
		return;
	hidden = begin(clock_rect());
	clock_draw();
	end(hidden);
}

/* Scancode set 1, US layout: make codes 0x00-0x39 to ASCII, unshifted and shifted. */
static const char keymap[2][0x3a] = {
	{ 0, 0, '1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '-', '=', '\b', 0,
	  'q', 'w', 'e', 'r', 't', 'y', 'u', 'i', 'o', 'p', '[', ']', '\n', 0, 'a', 's',
	  'd', 'f', 'g', 'h', 'j', 'k', 'l', ';', '\'', '`', 0, '\\', 'z', 'x', 'c', 'v',
	  'b', 'n', 'm', ',', '.', '/', 0, '*', 0, ' ' },
	{ 0, 0, '!', '@', '#', '$', '%', '^', '&', '*', '(', ')', '_', '+', '\b', 0,
	  'Q', 'W', 'E', 'R', 'T', 'Y', 'U', 'I', 'O', 'P', '{', '}', '\n', 0, 'A', 'S',
	  'D', 'F', 'G', 'H', 'J', 'K', 'L', ':', '"', '~', 0, '|', 'Z', 'X', 'C', 'V',
	  'B', 'N', 'M', '<', '>', '?', 0, '*', 0, ' ' },
};
static int shift, extended;

void display_key(uint8_t code)
{
	int hidden;
	char c;

	if (code == 0xe0) {
		extended = 1;
		return;
	}
	if (extended) {			/* arrows, keypad enter...: not typed */
		extended = 0;
		return;
	}
	if (code == 0x2a || code == 0x36)
		shift |= code == 0x2a ? 1 : 2;
	else if (code == 0xaa || code == 0xb6)
		shift &= code == 0xaa ? ~1 : ~2;
	if (code >= 0x3a || !fb)
		return;
	c = keymap[shift ? 1 : 0][code];
	if (!c)
		return;
	hidden = begin(term.body);
	term_put(c);
	end(hidden);
}
