package dev.tune4j.data;

import java.util.*;

/**
 * Text the project writes for itself, so the demo needs no download: simple stories for pretraining (in which animals
 * make their sounds), and an instruction set about those animals whose answers the stories imply.
 */
public final class Synthetic {
    private Synthetic() {}

    static final String[] NAMES = {"Lily", "Tom", "Ben", "Sue", "Max", "Amy", "Sam", "Mia", "Tim", "Zoe", "Leo", "Ann", "Jack", "Emma", "Bob", "Kim"};
    public static final String[][] ANIMALS = {{"cow", "moo"}, {"dog", "woof"}, {"cat", "meow"}, {"duck", "quack"}, {"sheep", "baa"},
            {"pig", "oink"}, {"lion", "roar"}, {"owl", "hoot"}, {"bee", "buzz"}, {"frog", "ribbit"}, {"horse", "neigh"}, {"mouse", "squeak"}};
    static final String[] PLACES = {"farm", "park", "forest", "pond", "garden", "zoo"};
    static final String[] COLOURS = {"red", "blue", "green", "yellow", "pink", "brown"};
    static final String[] THINGS = {"ball", "kite", "hat", "box", "cup", "book"};

    /** {@code n} short stories, separated by blank lines. */
    public static String stories(int n, long seed) {
        var r = new Random(seed);
        var sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            String name = pick(r, NAMES), place = pick(r, PLACES);
            String[] a = ANIMALS[r.nextInt(ANIMALS.length)], b = ANIMALS[r.nextInt(ANIMALS.length)];
            String he = r.nextBoolean() ? "She" : "He";
            switch (r.nextInt(4)) {
                case 0 -> sb.append("Once upon a time, ").append(name).append(" went to the ").append(place).append(". ").append(he)
                        .append(" saw a ").append(a[0]).append(". The ").append(a[0]).append(" said \"").append(a[1]).append("\". ")
                        .append(name).append(" was happy and said hello to the ").append(a[0]).append(".");
                case 1 -> sb.append(name).append(" had a ").append(pick(r, COLOURS)).append(" ").append(pick(r, THINGS)).append(". One day, a ")
                        .append(a[0]).append(" came to play. The ").append(a[0]).append(" says ").append(a[1]).append(". Then a ").append(b[0])
                        .append(" came too. The ").append(b[0]).append(" says ").append(b[1]).append(". They all played together.");
                case 2 -> sb.append("At the ").append(place).append(", the ").append(a[0]).append(" says ").append(a[1]).append(" and the ")
                        .append(b[0]).append(" says ").append(b[1]).append(". ").append(name).append(" likes to listen to them.");
                default -> sb.append(name).append(" asked mom, \"What does the ").append(a[0]).append(" say?\" Mom smiled and said, \"The ")
                        .append(a[0]).append(" says ").append(a[1]).append(".\" ").append(name).append(" laughed.");
            }
            sb.append("\n\n");
        }
        return sb.toString();
    }

    /** Instruction / answer pairs: "Lily sees a cow. What does the cow say?" → "The cow says moo." for every name × animal. */
    public static List<String[]> animalQuestions(long seed) {
        var out = new ArrayList<String[]>();
        for (String n : NAMES)
            for (String[] a : ANIMALS)
                out.add(new String[]{n + " sees a " + a[0] + ". What does the " + a[0] + " say?", "The " + a[0] + " says " + a[1] + "."});
        Collections.shuffle(out, new Random(seed));
        return out;
    }

    private static String pick(Random r, String[] a) {
        return a[r.nextInt(a.length)];
    }
}
