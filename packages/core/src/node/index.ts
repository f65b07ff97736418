export * from './discover.js';
