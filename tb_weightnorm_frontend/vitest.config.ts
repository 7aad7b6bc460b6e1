import {defineConfig} from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Pure modules run in node; DOM tests opt in with `// @vitest-environment happy-dom`.
    environment: 'node',
  },
});
